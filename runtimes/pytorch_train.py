"""The ``train`` scenario: one full PyTorch training step (forward, loss, backward, SGD
with momentum) on a fixed synthetic batch, in fp32 or mixed precision (autocast).

Only PyTorch trains; every other runtime's train cells are skipped with the reason.
torch is imported inside the functions, so the planner can ask for reasons cheaply.
"""

from __future__ import annotations

from typing import Any

from bench.core.cell import Target
from bench.core.errors import Unavailable
from bench.core.record import Executed
from bench.core.spec import BATCH, PreparedModel, make_inputs
from runtimes.base import Runtime
from runtimes.pytorch_rt import PyTorchRuntime, cuda_details

TRAIN_PRECISIONS = ("fp32", "fp16", "bf16")
"""fp32 trains in fp32; fp16 and bf16 are mixed precision: fp32 weights, autocast compute."""
LEARNING_RATE = 0.01
MOMENTUM = 0.9
FORWARD_FLOP_FACTOR = 3
"""A training step costs about 3x the forward FLOPs: the forward pass, then gradients with
respect to the activations and to the weights, each about one forward pass."""


def train_unavailable_reason(runtime: type[Runtime], target: Target, source: str) -> str | None:
    """One line saying why ``runtime`` cannot run a train cell for ``target`` (None when
    it can). Cheap: no framework is imported."""
    if runtime is not PyTorchRuntime:
        return f"the train scenario runs on pytorch only ({runtime.name} runs inference)"
    if target.precision not in TRAIN_PRECISIONS:
        return f"no {target.precision} training path (train runs {', '.join(TRAIN_PRECISIONS)})"
    return runtime.unavailable_reason(target, source)


class TrainSession:
    """A model's module (as exported, seeded), its optimizer and one fixed seeded batch
    with targets matched to the task.

    ``step`` runs one training step; ``synchronize`` waits for the device (CUDA), so a
    host clock around both times the whole step. Raises Unavailable when the device has no
    path for the requested mixed precision.
    """

    def __init__(
        self,
        module: Any,
        model: PreparedModel,
        target: Target,
        batch: int,
        threads: int,
        cudnn_benchmark: bool = False,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(target.device)
        self._cuda = self._device.type == "cuda"
        self._amp_dtype = _amp_dtype(torch, target.precision, self._device)
        if self._cuda:  # fp32 parts run true fp32, as in the inference cells
            torch.backends.cudnn.benchmark = cudnn_benchmark
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.cuda.reset_peak_memory_stats(self._device)
        self.module = module.to(self._device).train()
        feeds = make_inputs(model.inputs, {BATCH: batch}, model.seed)
        self._inputs = [torch.from_numpy(feeds[s.name]).to(self._device) for s in model.inputs]
        with torch.no_grad(), self._autocast():
            probe = self._forward()
        self.loss_name, self._loss_fn, self._targets = make_targets(
            torch, model.task, probe, model.seed
        )
        self._optimizer = torch.optim.SGD(
            self.module.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM
        )
        fp16 = target.precision == "fp16"
        self._scaler = torch.amp.GradScaler(self._device.type, enabled=fp16)
        self.executed = Executed(
            precision=_dtype_name(probe.dtype),
            device=str(next(self.module.parameters()).device),
            threads=torch.get_num_threads(),
            provider=f"torch {torch.__version__} eager training",
            details={
                "mixed_precision": (
                    f"autocast {_dtype_name(self._amp_dtype)}" + (" + GradScaler" if fp16 else "")
                    if self._amp_dtype is not None
                    else None
                ),
                "optimizer": f"SGD lr={LEARNING_RATE} momentum={MOMENTUM}",
                "loss": self.loss_name,
                **cuda_details(torch, self._cuda),
            },
        )
        self.steps = 0
        self.first_loss: float | None = None
        self._last_loss: Any = None

    def _autocast(self) -> Any:
        enabled = self._amp_dtype is not None
        return self._torch.autocast(self._device.type, dtype=self._amp_dtype, enabled=enabled)

    def _forward(self) -> Any:
        """The model's output on the batch; its first output when it returns several."""
        output = self.module(*self._inputs)
        return output[0] if isinstance(output, (tuple, list)) else output

    def step(self) -> None:
        """One training step: forward and loss (under autocast for mixed precision),
        backward through the grad scaler, optimizer step."""
        with self._autocast():
            loss = self._loss_fn(self._forward(), self._targets)
        self._optimizer.zero_grad(set_to_none=True)
        self._scaler.scale(loss).backward()
        self._scaler.step(self._optimizer)
        self._scaler.update()
        self._last_loss = loss.detach()
        self.steps += 1
        if self.first_loss is None:
            self.first_loss = float(self._last_loss)

    def synchronize(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._device)

    @property
    def last_loss(self) -> float | None:
        return None if self._last_loss is None else float(self._last_loss)

    def device_peak_mb(self) -> float | None:
        """Peak memory the CUDA caching allocator handed out (None on the CPU: see RSS)."""
        if not self._cuda:
            return None
        return self._torch.cuda.max_memory_allocated(self._device) / 2**20


def make_targets(torch: Any, task: str, output: Any, seed: int) -> tuple[str, Any, Any]:
    """``(loss name, loss function, targets)`` matched to the model's task and ``output``:
    class indices with cross-entropy for classifiers ([N, C] logits) and segmenters (per
    pixel: [N, C, H, W] logits, [N, H, W] targets); seeded same-shape values with mean
    squared error for anything else (regression outputs)."""
    generator = torch.Generator().manual_seed(seed)
    functional = torch.nn.functional
    if task in ("classification", "segmentation") and output.dim() >= 2:
        shape = (output.shape[0], *output.shape[2:])
        labels = torch.randint(0, output.shape[1], shape, generator=generator)
        return "cross_entropy", functional.cross_entropy, labels.to(output.device)
    values = torch.randn(output.shape, generator=generator).to(output.device)
    return "mse", functional.mse_loss, values


def _amp_dtype(torch: Any, precision: str, device: Any) -> Any:
    """The autocast dtype for ``precision`` (None for fp32); Unavailable with the reason
    when this device's autocast has no such path."""
    if precision == "fp32":
        return None
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if device.type == "cuda":
        if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise Unavailable(f"{device} has no bf16 support")
        return dtype
    probe = torch.nn.Linear(4, 4)
    with torch.autocast("cpu", dtype=dtype):
        ran = probe(torch.ones(1, 4)).dtype
    if ran != dtype:
        raise Unavailable(f"torch {torch.__version__} CPU autocast does not run {precision}")
    return dtype


def _dtype_name(dtype: Any) -> str:
    names = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}
    return names.get(str(dtype), str(dtype))
