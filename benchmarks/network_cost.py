"""What each network costs on the CPU: parameters, forward FLOPs per image, training-step time.

A benchmark, not a test. Each network is given by class path and built with its defaults:

    OMP_NUM_THREADS=1 python benchmarks/network_cost.py \\
        digit_recognizer.models.DigitCNN digit_recognizer.models.DeotteCNN

For each it prints the trainable parameters, the forward FLOPs of one image (convolutions and
matrix products, as torch.utils.flop_counter counts them: 2 per multiply-add), and the wall time
of a training step (forward, cross-entropy, backward, Adam step) on random inputs at batch 86 on
one thread, the median of `--repeats` runs of `--steps` steps after `--warmup` steps, with the
seconds an epoch of 37,800 images (the 90% training split) would take at that rate.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES

EPOCH_IMAGES = 37_800


def load_class(path: str) -> type[nn.Module]:
    module_name, _, class_name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def forward_flops(network: nn.Module) -> int:
    """FLOPs of one image's forward pass in eval mode (BN, ReLU and dropout are not counted)."""
    network.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    return counter.get_total_flops()


def step_seconds(network: nn.Module, batch_size: int, warmup: int, steps: int, seed: int = 0) -> float:
    """Mean wall time of one training step over `steps` steps, after `warmup` untimed ones."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    network.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(images), labels).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="+", help="class paths, e.g. digit_recognizer.models.DigitCNN")
    parser.add_argument("--batch-size", type=int, default=86)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per network, interleaved; the median is kept")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    networks = {path: load_class(path)() for path in args.networks}
    times: dict[str, list[float]] = {path: [] for path in networks}
    for _ in range(args.repeats):  # interleaved, so a neighbour's load falls on every network alike
        for path, network in networks.items():
            times[path].append(step_seconds(network, args.batch_size, args.warmup, args.steps))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch_size}, "
          f"{args.steps} steps after {args.warmup} warm-up, median of {args.repeats}")
    first = None
    for path, network in networks.items():
        seconds = statistics.median(times[path])
        first = first or seconds
        epoch = math.ceil(EPOCH_IMAGES / args.batch_size) * seconds
        runs = ", ".join(f"{1000 * t:.1f}" for t in times[path])
        print(f"{path}: {parameter_count(network):,} params, {forward_flops(network) / 1e6:.2f} MFLOPs/image, "
              f"{1000 * seconds:.1f} ms/step ({runs}), ~{epoch:.0f} s/epoch of {EPOCH_IMAGES:,} images, "
              f"{seconds / first:.2f}x the first")


if __name__ == "__main__":
    main()
