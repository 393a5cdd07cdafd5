"""Scoring trained networks on the validation split their runs held out.

benchmarks/seed_accuracy.py and benchmarks/shared_mistakes.py are thin commands over this: each
checkpoint is scored on the rows its own run never trained on (read from the checkpoint, so a
network is never flattered by its training rows), from one view of each image or averaged over
test-time shifts as `validate` does.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from digit_recognizer import figures
from digit_recognizer.constants import NUM_CLASSES

from digit_recognizer.checkpoints import describe_split, holds_rows_out, read_checkpoint, recorded_data_dir, recorded_split
from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.errors import UserError
from digit_recognizer.files import atomic_path
from digit_recognizer.inference import AveragedNetworks, Shift, network_from_checkpoint
from digit_recognizer.names import OOF_FILE, OOF_SUMMARY

ONE_PIXEL: list[Shift] = [(1, 0), (-1, 0), (0, 1), (0, -1)]


@dataclass
class ValidationSet:
    images: Tensor  # (N, 1, 28, 28) floats in [0, 1]
    labels: Tensor  # (N,)
    rows: Tensor  # (N,) 0-based data rows of train.csv
    split: dict[str, Any]  # the checkpoint's SPLIT_SETTINGS


def load_common_split(checkpoints: dict[str, dict], data_dir: str | None) -> ValidationSet:
    """The validation split every checkpoint's run held out; they must all share it."""
    splits = {path: recorded_split(path, contents) for path, contents in checkpoints.items()}
    first = next(iter(splits))
    split = splits[first]
    for path, other in splits.items():
        if other != split:
            raise UserError(f"{path}: held out {describe_split(other)}, but {first} held out "
                            f"{describe_split(split)}; score the networks of one split together")
    if not holds_rows_out(split):
        raise UserError(f"{first}: trained on every row (val_fraction 0), so no rows are held out to score it on")
    data = KaggleDigitsDataModule(data_dir, download=False, **split)
    data.setup("validate")
    return ValidationSet(to_model_input(data.val_set.images), data.val_set.labels, data.val_set.rows, split)


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


@torch.no_grad()
def out_of_fold(checkpoints: Sequence[str], shifts: Sequence[Shift] = (), data_dir: str | None = None) -> pd.DataFrame:
    """Every train.csv row predicted by the networks that validated on it (K-fold members never
    trained on their fold), probabilities averaged over them and over `shifts`.

    One row per train.csv row, in the file's order: line (in the CSV), label, predicted, fold, p0..p9.
    Rows no checkpoint held out, or folds that do not cover the file, are a UserError.
    """
    total: Tensor | None = None
    count: Tensor | None = None
    labels = folds = None
    for path in checkpoints:
        contents = read_checkpoint(path)
        split = recorded_split(path, contents)
        if not split["folds"]:
            raise UserError(f"{path}: not a fold's run (data.folds 0), so its held-out rows are not a fold")
        data = KaggleDigitsDataModule(data_dir or recorded_data_dir(contents), download=False, **split)
        data.setup("validate")
        held_out = data.val_set
        size = len(data.train_set) + len(held_out)
        if total is None:
            total, count = torch.zeros(size, NUM_CLASSES), torch.zeros(size)
            labels, folds = torch.full((size,), -1), torch.full((size,), -1)
        rows = held_out.rows.cpu()
        network = network_from_checkpoint(path, contents)
        total[rows] += class_probabilities(network, to_model_input(held_out.images.cpu()), shifts)
        count[rows] += 1
        labels[rows], folds[rows] = held_out.labels.cpu(), split["fold"]
    if total is None or not bool((count > 0).all()):
        missing = 0 if count is None else int((count == 0).sum())
        raise UserError(f"the checkpoints' folds leave {missing} rows of train.csv unpredicted; "
                        f"give one checkpoint of every fold")
    probabilities = total / count.unsqueeze(1)
    frame = pd.DataFrame({"line": torch.arange(len(labels)).numpy() + 2, "label": labels.numpy(),
                          "predicted": probabilities.argmax(1).numpy(), "fold": folds.numpy()})
    for digit in range(NUM_CLASSES):
        frame[f"p{digit}"] = probabilities[:, digit].numpy().round(6)
    return frame


def out_of_fold_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Accuracy over all rows with its standard error (binomial, sqrt(p(1-p)/N)), and each fold's."""
    right = frame["label"] == frame["predicted"]
    accuracy = float(right.mean())
    per_fold = right.groupby(frame["fold"])
    return {"rows": len(frame), "correct": int(right.sum()), "accuracy": accuracy,
            "standard_error": math.sqrt(accuracy * (1 - accuracy) / len(frame)),
            "folds": [{"fold": int(fold), "rows": int(part.size), "accuracy": float(part.mean())}
                      for fold, part in per_fold]}


def write_out_of_fold(checkpoints: Sequence[str], folder: Path, shifts: Sequence[Shift] = (),
                      data_dir: str | None = None, mistakes: int = 32) -> str:
    """oof.csv, oof.json, the out-of-fold confusion matrix and most confident mistakes (PNG) in
    `folder`, each written whole; returns the accuracy lines to print."""
    frame = out_of_fold(checkpoints, shifts, data_dir)
    summary = {**out_of_fold_summary(frame), "shifts": [list(shift) for shift in shifts],
               "checkpoints": list(checkpoints)}
    with atomic_path(folder / OOF_FILE) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(folder / OOF_SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    counts = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    np.add.at(counts, (frame["label"].to_numpy(), frame["predicted"].to_numpy()), 1)
    figure = figures.confusion_matrix_figure(counts, title="Out-of-fold confusion matrix")
    with atomic_path(folder / "oof_confusion_matrix.png") as tmp:
        figure.savefig(tmp, format="png")
    wrong = frame[frame["label"] != frame["predicted"]]
    probabilities = wrong[[f"p{d}" for d in range(NUM_CLASSES)]].to_numpy()
    worst = wrong.assign(confidence=probabilities.max(1)).nlargest(mistakes, "confidence")
    if len(worst):
        rows = torch.tensor(worst["line"].to_numpy() - 2)
        images = to_model_input(_train_images(checkpoints[0], data_dir)[rows])
        figure = figures.wrong_images_figure(images, torch.tensor(worst["label"].to_numpy()),
                                             torch.tensor(worst["predicted"].to_numpy()),
                                             torch.tensor(worst["confidence"].to_numpy()), rows, per_row=8)
        with atomic_path(folder / "oof_mistakes.png") as tmp:
            figure.savefig(tmp, format="png")
    lines = [f"out-of-fold accuracy: {summary['accuracy']:.5f} ± {summary['standard_error']:.5f} "
             f"({summary['correct']:,} of {summary['rows']:,} rows of train.csv)",
             "per fold: " + ", ".join(f"{f['fold']}: {f['accuracy']:.5f}" for f in summary["folds"]),
             f"written: {folder / OOF_FILE}, {folder / OOF_SUMMARY}, oof_confusion_matrix.png, oof_mistakes.png"]
    return "\n".join(lines)


def _train_images(checkpoint: str, data_dir: str | None) -> Tensor:
    """train.csv's uint8 images (N, 28, 28), in the file's order, from the checkpoint's data folder."""
    data = KaggleDigitsDataModule(data_dir or recorded_data_dir(read_checkpoint(checkpoint)), download=False,
                                  val_fraction=0.0)
    data.setup("fit")
    return data.train_set.images.cpu()
