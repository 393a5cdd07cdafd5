"""Reading a run's TensorBoard event files and projector files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray


def read_events(run: Path) -> EventAccumulator:
    return EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0, "images": 0}).Reload()


def confusion_counts(events: EventAccumulator, stage: str = "val") -> list[torch.Tensor]:
    return [torch.from_numpy(make_ndarray(e.tensor_proto)) for e in events.Tensors(f"{stage}_confusion_matrix/raw_counts")]


TP, FP, TN, FN = range(4)  # rows of a PR-curve tensor (then precision and recall)


def pr_curves(events: EventAccumulator, stage: str = "val") -> dict[int, list[np.ndarray]]:
    return {digit: [make_ndarray(e.tensor_proto) for e in events.Tensors(f"{stage}_pr_curve/{digit}")]
            for digit in range(10)}


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]
