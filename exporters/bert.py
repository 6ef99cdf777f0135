"""A BERT-base-shaped encoder written with torch.nn building blocks (no transformers
dependency): token ids and an attention mask in, hidden states and the pooled output out.
Random weights, seeded by the caller, initialised as BERT's."""

from __future__ import annotations

import torch
from torch import nn

MASKED_SCORE = -10000.0
"""Added to the attention scores of padding tokens, as in BERT (finite, so fp16 holds it)."""


class _SelfAttention(nn.Module):
    """Multi-head self-attention written out: projections, scaled scores plus the additive
    padding mask, softmax, weighted values, output projection."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_size = heads, hidden // heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.output = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        batch, sequence, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, sequence, self.heads, self.head_size).transpose(1, 2)

        query, key, value = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = query @ key.transpose(-1, -2) / self.head_size**0.5 + mask_bias
        context = self.dropout(scores.softmax(dim=-1)) @ value
        return self.output(context.transpose(1, 2).reshape(batch, sequence, hidden))


class _EncoderLayer(nn.Module):
    """A post-LayerNorm transformer layer, as in BERT: attention then a GELU feed-forward,
    each added to its input and normalised."""

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.attention = _SelfAttention(hidden, heads, dropout)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden), nn.Dropout(dropout)
        )
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.dropout(self.attention(x, mask_bias)))
        return self.ffn_norm(x + self.ffn(x))


class BertEncoder(nn.Module):
    """A BERT-shaped encoder: token, position and (type 0) segment embeddings, ``layers``
    post-LayerNorm transformer layers and BERT's tanh pooler on the first token.

    Takes ``input_ids`` and ``attention_mask`` (1 = token, 0 = padding), both int64
    [N, sequence] with sequence up to ``positions``; returns ``last_hidden_state``
    [N, sequence, hidden] and ``pooler_output`` [N, hidden]. Weights are initialised as
    BERT's: normal with standard deviation 0.02, LayerNorm to identity.
    """

    def __init__(
        self,
        layers: int = 12,
        hidden: int = 768,
        heads: int = 12,
        ffn: int = 3072,
        vocab: int = 30522,
        positions: int = 512,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(positions, hidden)
        self.segments = nn.Embedding(2, hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            _EncoderLayer(hidden, heads, ffn, dropout) for _ in range(layers)
        )
        self.pooler = nn.Linear(hidden, hidden)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(positions) + self.segments.weight[0]
        x = self.dropout(self.embedding_norm(x))
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * MASKED_SCORE
        for layer in self.layers:
            x = layer(x, mask_bias)
        return x, torch.tanh(self.pooler(x[:, 0]))


def bert_base() -> nn.Module:
    """BERT-base-shaped encoder (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522)."""
    return BertEncoder()
