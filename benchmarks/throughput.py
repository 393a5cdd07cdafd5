"""Training throughput of digit_recognizer's Trainer path against a plain PyTorch loop.

Both train the same network with the same batch size, optimizer and batched augmentation, on the
same device, in one process; the plain loop is the floor of Python overhead for this model, so the
ratio shows what Lightning and the package's data path cost. A benchmark, not a test:

    python benchmarks/throughput.py --device cpu --data-dir "$DIGIT_RECOGNIZER_DATA"
    python benchmarks/throughput.py --device cuda --data-dir "$DIGIT_RECOGNIZER_DATA" --full-recipe
    python benchmarks/throughput.py --device cuda --precision bf16-mixed --channels-last --compile reduce-overhead
    python benchmarks/throughput.py --device cpu --overhead --steps-per-batch 16

The last line is `lightning/plain throughput ratio: X.XX`.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from digit_recognizer.cli import DigitCLI
from digit_recognizer.data.augment import BatchRandomWarp
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.models import DigitCNN
from digit_recognizer.classifier import reference_optimizer

warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning 2.6 on torch 2.14

CONFIG = Path(__file__).resolve().parents[1] / "digit_recognizer" / "recipes" / "cnn.yaml"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(pl.Callback):
    """Wall time of the optimizer steps after the first `warmup` ones, up to the run's max_steps
    (with several steps a batch, from the first batch that starts at or after `warmup`).

    The GPU is synchronized only where the timing starts and where it ends, as in the plain loop:
    a wait after every step would stop the CPU from queueing the next step while the GPU works.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0
        self.first_step: int | None = None
        self.timed_steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step is None and trainer.global_step >= self.warmup:
            synchronize(pl_module.device)
            self.first_step, self.start = trainer.global_step, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= trainer.max_steps and self.first_step is not None:
            synchronize(pl_module.device)
            self.end = time.perf_counter()
            self.timed_steps = trainer.global_step - self.first_step


def cli_args(args: argparse.Namespace, *extra: str) -> list[str]:
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    return [
        "--config", args.config,
        "--data.data_dir", args.data_dir, "--data.download", "false",
        "--data.batch_size", str(args.batch_size),
        "--trainer.accelerator", accelerator, "--trainer.devices", "1",
        "--trainer.precision", args.precision,
        "--trainer.benchmark", str(args.cudnn_benchmark).lower(),
        "--model.channels_last", str(args.channels_last).lower(),
        "--model.compile", args.compile or "null",
        "--data.steps_per_batch", str(args.steps_per_batch),
        *extra,
    ]


class NegligibleNetwork(nn.Module):
    """One linear layer: a step costs almost nothing but the loop around it (`--overhead`)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def lightning_throughput(args: argparse.Namespace, *network: str) -> float:
    """Images/s of the real `fit` path (config, callbacks, logger, augmentation), no validation."""
    cli = DigitCLI(args=cli_args(
        args, *network,
        "--trainer.max_steps", str(args.warmup + args.steps),
        "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.save_dir", args.log_dir,
    ), run=False)
    timer = StepTimer(args.warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    return timer.timed_steps * args.batch_size / (timer.end - timer.start)


def bare_lightning_throughput(args: argparse.Namespace) -> float:
    """Images/s of the same module and data module under a bare Trainer (no callbacks, logger or
    progress bar): what Lightning's loop costs by itself, apart from the package's callbacks."""
    cli = DigitCLI(args=cli_args(args), run=False)
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator=cli.trainer.accelerator, devices=1, precision=args.precision, benchmark=args.cudnn_benchmark,
        max_steps=args.warmup + args.steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    trainer.fit(cli.model, cli.datamodule)
    return timer.timed_steps * args.batch_size / (timer.end - timer.start)


def plain_throughput(args: argparse.Namespace, images: torch.Tensor, labels: torch.Tensor,
                     network: type[nn.Module] = DigitCNN) -> float:
    """Images/s of a hand-written loop: same network, optimizer, batch and augmentation."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = network().to(device, memory_format=memory_format).train()
    if args.compile:
        model.compile(mode=args.compile)
    optimizer = reference_optimizer(model.parameters())
    augment = BatchRandomWarp()
    images, labels = images.to(device), labels.to(device)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    autocast = torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None)
    scaler = torch.amp.GradScaler(device.type, enabled=half is torch.float16)  # as Lightning's 16-mixed
    order = torch.randperm(len(images), device=device)
    start, position = 0.0, 0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            synchronize(device)
            start = time.perf_counter()
        if position + args.batch_size > len(images):
            order, position = torch.randperm(len(images), device=device), 0
        index = order[position : position + args.batch_size]
        position += args.batch_size
        batch = augment(to_model_input(images[index])).contiguous(memory_format=memory_format)
        with autocast:
            loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def full_recipe(args: argparse.Namespace) -> tuple[float, str]:
    """Wall time of the recipe's whole `fit` (the reference: 30 epochs, validation each epoch), from
    building the Trainer to the end of the last epoch, and what the run was and scored."""
    start = time.perf_counter()
    cli = DigitCLI(args=["fit", *cli_args(args, "--trainer.logger.init_args.save_dir", args.log_dir)])
    seconds = time.perf_counter() - start
    metrics = cli.trainer.callback_metrics
    scored = (f"val/acc last {float(metrics['val/acc']):.4f}, best {float(metrics['val/acc_best']):.4f}"
              if "val/acc" in metrics else "no validation split")
    return seconds, f"{cli.trainer.current_epoch} epochs of {len(cli.datamodule.train_set):,} images; {scored}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--config", default=str(CONFIG), help="the recipe whose Trainer path is timed (the plain loop keeps the reference's RMSprop)")
    parser.add_argument("--data-dir", default=os.environ.get("DIGIT_RECOGNIZER_DATA", "data"),
                        help="folder of train.csv (default: $DIGIT_RECOGNIZER_DATA, else ./data)")
    parser.add_argument("--batch-size", type=int, default=86)
    parser.add_argument("--steps-per-batch", type=int, default=1,
                        help="optimizer steps per Lightning batch on the Trainer path (data.steps_per_batch)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps (after the warmup)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the best counts")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "16-mixed", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true", help="NHWC weights and images (model.channels_last)")
    parser.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile the network with this mode (model.compile)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick convolution algorithms (trainer.benchmark)")
    parser.add_argument("--log-dir", default="benchmark_logs", help="where the Trainer runs log")
    parser.add_argument("--bare", action="store_true", help="also time the module under a bare Trainer")
    parser.add_argument("--full-recipe", action="store_true", help="also time the recipe's whole fit (the reference: 30 epochs)")
    parser.add_argument("--overhead", action="store_true",
                        help="also measure the per-step cost of the loop itself, with a one-layer network (ms per step)")
    args = parser.parse_args()

    # The plain loop trains on the same 37,800 images the data module splits off.
    cli = DigitCLI(args=cli_args(args), run=False)
    cli.datamodule.setup("fit")
    train = cli.datamodule.train_set
    lightning, bare, plain = [], [], []
    for _ in range(args.repeats):  # interleaved, so that a busy moment hurts all alike
        lightning.append(lightning_throughput(args))
        if args.bare:
            bare.append(bare_lightning_throughput(args))
        plain.append(plain_throughput(args, train.images.cpu(), train.labels.cpu()))

    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}; steps per Lightning batch {args.steps_per_batch}; precision {args.precision}; channels_last {args.channels_last}; "
          f"compile {args.compile}; cudnn.benchmark {args.cudnn_benchmark}; "
          f"best of {args.repeats} runs of {args.steps} timed steps after {args.warmup}")
    if args.full_recipe:
        seconds, run = full_recipe(args)
        print(f"full recipe {Path(args.config).name} ({run}): {seconds:.1f} s")
    print(f"digit_recognizer Trainer: {max(lightning):,.0f} images/s  (all runs: {_list(lightning)})")
    if bare:
        print(f"bare Lightning Trainer:   {max(bare):,.0f} images/s  (all runs: {_list(bare)})")
    print(f"plain PyTorch loop:       {max(plain):,.0f} images/s  (all runs: {_list(plain)})")
    print(f"lightning/plain throughput ratio: {max(lightning) / max(plain):.2f}")
    if args.overhead:
        negligible = ["--model.network", f"{__name__}.NegligibleNetwork"]
        for steps_per_batch in sorted({1, args.steps_per_batch}):
            setting = argparse.Namespace(**{**vars(args), "steps_per_batch": steps_per_batch})
            trainer_ms, plain_ms = [], []
            for _ in range(args.repeats):
                trainer_ms.append(1000 * args.batch_size / lightning_throughput(setting, *negligible))
                plain_ms.append(1000 * args.batch_size / plain_throughput(args, train.images.cpu(), train.labels.cpu(),
                                                                           NegligibleNetwork))
            print(f"per-step overhead, one-layer network, {steps_per_batch} step(s) a Lightning batch: Trainer "
                  f"{min(trainer_ms):.3f} ms, plain loop {min(plain_ms):.3f} ms a step; the package's overhead "
                  f"{min(trainer_ms) - min(plain_ms):.3f} ms a step (goal: at most 0.1)")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


if __name__ == "__main__":
    main()
