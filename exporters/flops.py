"""Parameter and FLOP counts of a PyTorch module, counted from the module itself."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    """The number of parameter elements (buffers such as BatchNorm statistics excluded)."""
    return sum(parameter.numel() for parameter in module.parameters())


def _counted_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...], on_meta: bool) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if on_meta:
            state = {
                name: torch.empty_like(tensor, device="meta")
                for name, tensor in [*module.named_parameters(), *module.named_buffers()]
            }
            meta_inputs = tuple(torch.empty_like(t, device="meta") for t in inputs)
            functional_call(module, state, meta_inputs)
        else:
            module(*inputs)
    return counter.get_total_flops()


def count_flops_per_sample(module: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one forward pass per sample, as counted by ``FlopCounterMode``.

    ``example_inputs`` have the batch as dimension 0; the total is divided by that batch.
    Only operators with a FLOP formula count (matmuls, convolutions, attention): a
    multiply-add is 2 FLOPs, element-wise work is not counted. The pass runs on the meta
    device (no arithmetic, no memory for activations), where ``nn.LSTM`` decomposes into
    matmuls that count; a model that cannot run on meta is counted on the real inputs.
    """
    batch = int(example_inputs[0].shape[0]) if example_inputs[0].dim() else 1
    try:
        total = _counted_flops(module, example_inputs, on_meta=True)
    except Exception:  # data-dependent ops (e.g. .item()) cannot run on meta
        total = _counted_flops(module, example_inputs, on_meta=False)
    return total // max(batch, 1)
