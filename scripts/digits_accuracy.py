"""One real model, trained here and measured: a small CNN on scikit-learn's handwritten
digits, then its real top-1 at every precision on ONNX Runtime and OpenVINO.

The digits (1,797 8x8 grey images, ten classes) ship with scikit-learn: nothing is
downloaded. A fixed stratified split (80/20, seed 0: 1,437 train, 360 test) is made; the
CNN (two 3x3 convolutions, a pooling, two linear layers: 38k parameters) is trained on
the train split in PyTorch, seeded and deterministic on one thread, and scored on the
test split. It is exported to ONNX with a dynamic batch, and ``cli.py run`` measures it
with ``--dataset`` on the test split (every sample scored) and ``--calibration-data`` on
the train split (int8 never calibrates on what it is scored on). The table gives each
runtime and precision as asked and as executed, its top-1 and top-5, its drop in points
from the fp32 reference (ONNX Runtime on the CPU running the file as exported), the
agreement of its predictions with the reference's, its largest output error over the
outputs' scale, the output verdict, whether the drop is within the accuracy budget, and
the median latency at batch 1; a cell a runtime cannot run here is listed with the
runtime's reason. The machine is taken from the run's environment.json.

    python scripts/digits_accuracy.py --out docs/accuracy   # docs/accuracy.md's figures
    python scripts/digits_accuracy.py --tiny                # 3 epochs, smoke timing: a check
    python scripts/digits_accuracy.py --no-run              # the files and the command only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.budget import AccuracyBudget  # noqa: E402
from bench.core.spec import BATCH, TensorSpec  # noqa: E402
from exporters.torch_export import export_onnx  # noqa: E402

PRECISIONS = "fp32,fp16,bf16,int8"
RUNTIMES = "onnxruntime,openvino"


@dataclass(frozen=True)
class Split:
    """The digits as model inputs (pixels scaled to [0, 1], shape (N, 1, 8, 8)) and labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's bundled digits, split stratified by class with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return Split(train_x, train_y, test_x, test_y)


class DigitsNet(nn.Module):
    """Two 3x3 convolutions (16, 32 channels), a 2x2 max-pool, a 64-unit hidden layer;
    10 logits per 1x8x8 image."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass
class Trained:
    """A trained model and how it got there: its top-1 on the held-out test split."""

    module: DigitsNet
    epochs: int
    seconds: float
    threads: int
    top1: float


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Deterministic kernels on ``threads`` threads for the block; torch's settings as
    they were afterwards (a test process goes on with its own)."""
    was_threads, was_deterministic = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
    )
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(was_threads)
        torch.use_deterministic_algorithms(was_deterministic)


def top1(module: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """The share of ``images`` whose highest logit is their label."""
    module.eval()
    with torch.no_grad():
        predicted = module(torch.from_numpy(images)).argmax(dim=1).numpy()
    return float(np.mean(predicted == labels))


def train(split: Split, epochs: int = 20, seed: int = 0, threads: int = 1) -> Trained:
    """A DigitsNet trained on ``split.train_*`` (AdamW, one-cycle learning rate peaking at
    3e-3, batches of 64 reshuffled each epoch), seeded with ``seed``: the same weights on
    every run with the same torch and thread count. Its top-1 is on ``split.test_*``."""
    batch = 64
    with _deterministic(threads):
        torch.manual_seed(seed)
        module = DigitsNet()
        images, labels = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
        steps = epochs * -(-len(images) // batch)
        optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
        order = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        module.train()
        for _ in range(epochs):
            permutation = torch.randperm(len(images), generator=order)
            for first in range(0, len(images), batch):
                chosen = permutation[first : first + batch]
                loss = nn.functional.cross_entropy(module(images[chosen]), labels[chosen])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        seconds = time.perf_counter() - start
        accuracy = top1(module, split.test_x, split.test_y)
    return Trained(module, epochs, seconds, threads, accuracy)


def write_files(trained: Trained, split: Split, folder: Path) -> dict[str, Path]:
    """digits.onnx (dynamic batch, input ``input``, output ``logits``), digits-test.npz
    (``input`` and ``labels``: the scored data) and digits-train.npz (``input`` only: the
    int8 calibration data) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "onnx": folder / "digits.onnx",
        "test": folder / "digits-test.npz",
        "train": folder / "digits-train.npz",
    }
    spec = (TensorSpec("input", (BATCH, 1, 8, 8)),)
    export_onnx(trained.module.eval(), spec, ("logits",), files["onnx"], opset=18, seed=0)
    np.savez(files["test"], input=split.test_x, labels=split.test_y)
    np.savez(files["train"], input=split.train_x)
    return files


def bench_args(files: dict[str, Path], args: argparse.Namespace, calibration: int) -> list[str]:
    """The ``cli.py run`` arguments that measure the exported model on the split."""
    given = [
        *(["--config", str(args.config)] if args.config else []),
        *(["--profile", args.profile] if args.profile else []),
        *(["--cache-dir", str(args.cache_dir)] if args.cache_dir else []),
    ]
    return [
        "run",
        *given,
        "--onnx", str(files["onnx"]),
        "--shape", f"input={args.batch}x1x8x8",
        "--dataset", str(files["test"]),
        "--dataset-samples", "0",
        "--calibration-data", str(files["train"]),
        "--calibration-samples", str(calibration),
        "--precisions", args.precisions,
        "--runtimes", args.runtimes,
        "--scenarios", "latency",
        "--accuracy-budget", str(args.budget),
        "--results-dir", str(args.results_dir),
        "--name", "digits",
        "--no-progress",
    ]  # fmt: skip


def run_bench(arguments: list[str], results_dir: Path) -> tuple[int, Path]:
    """``cli.py run`` in a process (its output passed through); its exit code and the run
    folder it made. SystemExit where it made none."""
    before = set(results_dir.iterdir()) if results_dir.is_dir() else set()
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *arguments], cwd=ROOT)
    made = sorted(set(results_dir.iterdir()) - before) if results_dir.is_dir() else []
    runs = [path for path in made if (path / "results.jsonl").is_file()]
    if not runs:
        raise SystemExit(f"cli.py run ended {done.returncode} and wrote no results")
    return done.returncode, runs[-1]


@dataclass
class Row:
    """One cell of the run: what was asked, what ran, and its figures on the test split."""

    runtime: str
    asked: str
    executed: str | None
    status: str
    reason: str | None = None
    top1: float | None = None
    top5: float | None = None
    reference_top1: float | None = None
    drop_points: float | None = None
    agreement: float | None = None
    scaled_error: float | None = None
    verdict: str | None = None
    within_budget: bool | None = None
    median_ms: float | None = None
    unstable: bool | None = None
    notes: list[str] | None = None


def rows_of(records: list[dict[str, Any]], budget: float) -> list[Row]:
    """A row per record, in the order the run measured them."""
    rows = []
    for record in records:
        cell, accuracy = record["cell"], record.get("accuracy") or {}
        scored = accuracy.get("dataset") or {}
        row = Row(
            cell["runtime"],
            cell["precision"],
            (record.get("executed") or {}).get("precision"),
            record["status"],
            record.get("reason"),
            scored.get("value"),
            scored.get("top5"),
            scored.get("reference_value"),
            agreement=accuracy.get("top1_agreement"),
            scaled_error=accuracy.get("scaled_error"),
            verdict=accuracy.get("verdict"),
            median_ms=(record.get("latency_ms") or {}).get("median"),
            unstable=record.get("unstable"),
            notes=record.get("notes") or None,
        )
        if row.top1 is not None and row.reference_top1 is not None:
            row.drop_points = round(100 * (row.reference_top1 - row.top1), 6)
            allowed = AccuracyBudget(budget)  # points, as --accuracy-budget reads them
            row.within_budget = not allowed.exceeded(row.reference_top1, row.top1)
        rows.append(row)
    return rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _relative(text: str) -> str:
    return text.replace(f"{ROOT}/", "")


HEADER = ("runtime", "precision", "top-1", "top-5", "drop pt", "agree", "error", "outputs")
"""The table's columns, then the budget's and the latency's (named by the run)."""


def _cells(row: Row) -> list[str]:
    precision = f"{row.asked} → {row.executed}" if row.executed else row.asked
    if row.status != "ok":
        return [row.runtime, precision, f"{row.status}: {row.reason}"]
    return [
        row.runtime,
        precision,
        _percent(row.top1),
        _percent(row.top5),
        "-" if row.drop_points is None else f"{row.drop_points:.2f}",
        _percent(row.agreement),
        "-" if row.scaled_error is None else f"{row.scaled_error:.4f}",
        row.verdict or "-",
        {True: "within", False: "OVER", None: "-"}[row.within_budget],
        "-" if row.median_ms is None else f"{row.median_ms:.4f}{'!' if row.unstable else ''}",
    ]


def _aligned(table: list[list[str]]) -> list[str]:
    """Rows of cells in columns, the first two left-aligned, the rest right-aligned; a
    short row (a cell that did not run) runs its last cell on."""
    full = len(table[0])
    widths = [max(len(row[i]) for row in table if len(row) == full) for i in range(full)]
    lines = []
    for cells in table:
        padded = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=False))  # short rows
        ]
        if len(cells) < full:
            padded[-1] = cells[-1]
        lines.append("  ".join(padded).rstrip())
    return lines


def render(figures: dict[str, Any]) -> str:
    """The figures as the plain-text table docs/accuracy.md quotes: one line per cell (a cell
    that did not run gives its status and reason in place of figures)."""
    machine, split, trained = figures["machine"], figures["split"], figures["training"]
    libraries = machine["libraries"]
    gpus = f"{machine['gpus']} GPUs, not used" if machine["gpus"] else "no GPU"
    lines = [
        "digits: a small CNN on scikit-learn's handwritten digits (8x8 grey, 10 classes)",
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{gpus}; load average {machine['load_average_1m']} at the start; "
        f"onnxruntime {libraries.get('onnxruntime')}, openvino {libraries.get('openvino')}",
        f"split: stratified {split['train']}/{split['test']} (seed {split['seed']}): train "
        "for training and int8 calibration, test held out and every sample scored",
        f"training: {trained['epochs']} epochs in {trained['seconds']:.1f} s on "
        f"{trained['threads']} thread (torch {trained['torch']}); held-out top-1 in "
        f"PyTorch fp32 {_percent(trained['top1'])}",
        "",
    ]
    header = [*HEADER, f"budget {figures['budget_points']:g} pt", f"median ms b{figures['batch']}"]
    rows = [Row(**row) for row in figures["rows"]]
    lines += _aligned([header, *map(_cells, rows)])
    lines += [
        "",
        "drop pt: points of top-1 below the reference's; agree: predictions equal to the "
        "reference's; error: the largest output error over the outputs' scale;",
        "outputs: their verdict at the precision's tolerance; median ms: latency at that batch",
        "(! = unstable: its coefficient of variation above the suite's cv_threshold)",
        f"reference: {figures['reference']}, top-1 {_percent(figures['reference_top1'])}",
    ]
    calibrations = {n for row in rows for n in row.notes or [] if "calibration on" in n}
    lines += [f"int8: {_relative(note)}" for note in sorted(calibrations)]
    lines.append(f"command: python cli.py {_relative(' '.join(figures['command']))}")
    return "\n".join(lines) + "\n"


def figures_of(
    run_dir: Path, split: Split, trained: Trained, args: argparse.Namespace, command: list[str]
) -> dict[str, Any]:
    """The run's figures with the machine it ran on (its environment.json), the split and
    the training: what digits.json holds."""
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    environment = json.loads((run_dir / "environment.json").read_text())
    scored = [r["accuracy"] for r in records if (r.get("accuracy") or {}).get("reference")]
    return {
        "machine": {
            "cpu": environment["cpu"]["model"],
            "cores": environment["cpu"]["physical_cores"],
            "memory_gib": environment["memory_gib"],
            "gpus": len(environment.get("gpus") or []),
            "os": environment["os"],
            "python": environment["python"],
            "load_average_1m": environment["system"]["load_average_1m"],
            "libraries": environment["libraries"],
        },
        "split": {"train": len(split.train_y), "test": len(split.test_y), "seed": args.seed},
        "training": {
            "epochs": trained.epochs,
            "seconds": round(trained.seconds, 2),
            "threads": trained.threads,
            "top1": trained.top1,
            "torch": torch.__version__,
            "scikit-learn": version("scikit-learn"),
        },
        "batch": args.batch,
        "budget_points": args.budget,
        "reference": scored[0]["reference"] if scored else None,
        "reference_top1": scored[0]["dataset"]["reference_value"] if scored else None,
        "run": str(run_dir.resolve()),
        "command": command,
        "rows": [asdict(row) for row in rows_of(records, args.budget)],
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="the split's and training's seed")
    parser.add_argument("--threads", type=int, default=1, help="training threads")
    parser.add_argument(
        "--calibration-samples", type=int, help="int8 calibration samples (default: all train)"
    )
    parser.add_argument("--batch", type=int, default=1, help="the cells' batch")
    parser.add_argument("--budget", type=float, default=1.0, help="points of top-1 allowed")
    parser.add_argument("--precisions", default=PRECISIONS)
    parser.add_argument("--runtimes", default=RUNTIMES)
    parser.add_argument("--config", type=Path, help="the suite file (default: bench.toml)")
    parser.add_argument("--profile", help="a profile of the suite file, e.g. smoke")
    parser.add_argument("--files", type=Path, default=Path("results/digits"), help="model, data")
    parser.add_argument("--out", type=Path, help="digits.json and digits.txt (default: --files)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="3 epochs, 64 calibration samples, the smoke profile (unless --config is given)",
    )
    parser.add_argument("--no-run", action="store_true", help="stop after writing the files")
    args = parser.parse_args()
    if args.tiny:
        args.epochs, args.calibration_samples = 3, args.calibration_samples or 64
        args.profile = args.profile or (None if args.config else "smoke")
    return args


def main() -> int:
    args = _arguments()
    split = load_split(args.seed)
    trained = train(split, args.epochs, args.seed, args.threads)
    print(
        f"trained {args.epochs} epochs in {trained.seconds:.1f} s: held-out top-1 "
        f"{_percent(trained.top1)} ({len(split.test_y)} test samples, PyTorch fp32)"
    )
    files = write_files(trained, split, args.files)
    command = bench_args(files, args, args.calibration_samples or len(split.train_y))
    print(f"python cli.py {' '.join(command)}")
    if args.no_run:
        return 0
    code, run_dir = run_bench(command, args.results_dir)
    figures = figures_of(run_dir, split, trained, args, command)
    text = render(figures)
    out = args.out or args.files
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits.json").write_text(_relative(json.dumps(figures, indent=1)) + "\n")
    (out / "digits.txt").write_text(text)
    print(text, end="")
    print(f"figures: {out / 'digits.json'}, {out / 'digits.txt'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
