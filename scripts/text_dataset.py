"""A labelled text dataset for ``run --dataset``, tokenised by the model's own tokenizer.

Reads lines of ``LABEL<TAB>TEXT`` (a class index, then the text), encodes every text with
the tokenizer of a Transformers model (``hf:ORG/NAME`` from the Hugging Face cache, or a
folder written by ``save_pretrained``), padded or truncated to ``--length`` tokens, and
writes an ``.npz`` with one array per input the model takes (``input_ids``,
``attention_mask``, ``token_type_ids`` where the tokenizer makes them; ``--inputs``
chooses) and ``labels``:

    python scripts/text_dataset.py hf:ORG/NAME reviews.tsv reviews.npz --length 128
    python cli.py run --model hf:ORG/NAME --shape input_ids=1x128 --dataset reviews.npz

A model's generated inputs are token ids drawn below its vocabulary, which time it; this is
how it is scored on real text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def read_lines(path: Path) -> tuple[list[str], np.ndarray]:
    """The texts and their labels of a ``LABEL<TAB>TEXT`` file; ValueError naming the
    first line that is not so."""
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label.strip().lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected LABEL<TAB>TEXT, the label an integer")
        labels.append(int(label))
        texts.append(text)
    if not texts:
        raise ValueError(f"{path}: no lines of LABEL<TAB>TEXT")
    return texts, np.asarray(labels, np.int64)


def tokenised(
    model: str, texts: list[str], length: int, inputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    """The tokenizer's encoding of ``texts`` (``model``: ``hf:ORG/NAME`` or ``hf:FOLDER``),
    ``length`` tokens each, int64, by input name (all it makes, or ``inputs``)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model.removeprefix("hf:"))
    encoded = tokenizer(
        texts, padding="max_length", truncation=True, max_length=length, return_tensors="np"
    )
    names = inputs or [name for name in tokenizer.model_input_names if name in encoded]
    missing = [name for name in names if name not in encoded]
    if missing:
        raise ValueError(f"the tokenizer makes no {', '.join(missing)}: it makes {list(encoded)}")
    return {name: np.asarray(encoded[name], np.int64) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="hf:ORG/NAME or hf:FOLDER (its tokenizer)")
    parser.add_argument("lines", type=Path, help="a LABEL<TAB>TEXT file")
    parser.add_argument("out", type=Path, help="the .npz to write")
    parser.add_argument("--length", type=int, default=128, help="tokens a text (default 128)")
    parser.add_argument("--inputs", help="the inputs to write, comma-separated (default: all)")
    args = parser.parse_args(argv)
    try:
        texts, labels = read_lines(args.lines)
        inputs = args.inputs.split(",") if args.inputs else None
        arrays = tokenised(args.model, texts, args.length, inputs)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    np.savez(args.out, **arrays, labels=labels)
    print(f"{args.out}: {len(texts)} texts, {', '.join(arrays)} of {args.length} tokens, labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
