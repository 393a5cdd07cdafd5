"""Scoring trained networks on the validation split their runs held out.

benchmarks/seed_accuracy.py and benchmarks/shared_mistakes.py are thin commands over this: each
checkpoint is scored on the rows its own run never trained on (read from the checkpoint, so a
network is never flattered by its training rows), from one view of each image or averaged over
test-time shifts as `validate` does.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from digit_recognizer.checkpoints import read_checkpoint, recorded_split
from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.errors import UserError
from digit_recognizer.inference import AveragedNetworks, Shift, network_from_checkpoint

ONE_PIXEL: list[Shift] = [(1, 0), (-1, 0), (0, 1), (0, -1)]


@dataclass
class ValidationSet:
    images: Tensor  # (N, 1, 28, 28) floats in [0, 1]
    labels: Tensor  # (N,)
    val_fraction: float
    split_seed: int


def load_common_split(checkpoints: dict[str, dict], data_dir: str | None) -> ValidationSet:
    """The validation split every checkpoint's run held out; they must all share it."""
    splits = {path: recorded_split(path, contents) for path, contents in checkpoints.items()}
    first = next(iter(splits))
    split = splits[first]
    for path, other in splits.items():
        if other != split:
            raise UserError(f"{path}: held out val_fraction {other['val_fraction']}, split_seed {other['split_seed']}, "
                            f"but {first} held out val_fraction {split['val_fraction']}, split_seed "
                            f"{split['split_seed']}; score the networks of one split together")
    if not split["val_fraction"]:
        raise UserError(f"{first}: trained on every row (val_fraction 0), so no rows are held out to score it on")
    data = KaggleDigitsDataModule(data_dir, download=False, **split)
    data.setup("validate")
    return ValidationSet(to_model_input(data.val_set.images), data.val_set.labels, **split)


def load_networks(paths: Sequence[str], data_dir: str | None) -> tuple[list[nn.Module], ValidationSet]:
    """Each checkpoint's network, and their common validation split; every file is read once."""
    checkpoints = {path: read_checkpoint(path) for path in paths}
    split = load_common_split(checkpoints, data_dir)
    return [network_from_checkpoint(path, contents) for path, contents in checkpoints.items()], split


@torch.no_grad()
def class_probabilities(network: nn.Module, images: Tensor, shifts: Sequence[Shift] = (),
                        batch_size: int = 1000) -> Tensor:
    """(N, 10) probabilities of one network, averaged over the image and its shifts as `validate` does."""
    views = AveragedNetworks([network], shifts)
    return torch.cat([views(batch).exp() for batch in images.split(batch_size)])


def correct_count(probabilities: Tensor, labels: Tensor) -> int:
    return int((probabilities.argmax(-1) == labels).sum())


def seeds_summary(correct: Sequence[int], total: int, goal: float) -> str:
    """'4,186 / 4,184 / 4,182 correct: 0.99619 ± 0.00048, goal met' for one scoring of the seeds."""
    accuracies = [c / total for c in correct]
    spread = f" ± {statistics.stdev(accuracies):.5f}" if len(correct) > 1 else ""
    mean = statistics.fmean(accuracies)
    short = goal * total - statistics.fmean(correct)
    verdict = "goal met" if mean >= goal else f"goal not met ({short:.1f} images short on average)"
    return f"{' / '.join(f'{c:,}' for c in correct)} correct: {mean:.5f}{spread}, {verdict}"


def shared_mistake_counts(predictions: Tensor, labels: Tensor) -> Counter[int]:
    """(networks, N) predicted classes and (N,) labels -> {k: images wrong in exactly k networks}."""
    wrong_in = (predictions != labels).sum(0)
    return Counter(wrong_in[wrong_in > 0].tolist())
