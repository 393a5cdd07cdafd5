"""SubmissionWriter: `predict` -> a Kaggle submission CSV, complete or not at all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_warn

from digit_recognizer.constants import SUBMISSION_COLUMNS
from digit_recognizer.files import atomic_path, disk_full_is_a_user_error
from digit_recognizer.runs import run_dir_of

SUBMISSION_FILE = "submission.csv"


class SubmissionWriter(BasePredictionWriter):
    """Write `ImageId,Label` (ImageId from 1, in test.csv's row order) after `predict`.

    Under DDP every process predicts a shard, and the sampler pads the shards with repeated
    images; the rows are gathered by their dataset indices and each ImageId is written once.

    Args:
        path: Where to write; default: submission.csv in the checkpoint's run folder (or the
            logger's folder when no checkpoint was given).
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.written: Path | None = None

    def output_path(self, trainer: Trainer) -> Path:
        if self.path:
            return Path(self.path)
        if trainer.ckpt_path:
            return run_dir_of(trainer.ckpt_path) / SUBMISSION_FILE
        return Path(trainer.log_dir or trainer.default_root_dir) / SUBMISSION_FILE

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        probabilities = torch.cat(list(predictions)).to(pl_module.device)
        # Lightning nests the indices per dataloader (the predictions of one loader it does not).
        indices = torch.tensor(list(_flatten(batch_indices)), device=pl_module.device)
        if trainer.world_size > 1:
            probabilities = pl_module.all_gather(probabilities).flatten(0, 1)
            indices = pl_module.all_gather(indices).flatten()
        if not trainer.is_global_zero:
            return
        indices, labels = unique_by_index(indices.cpu(), probabilities.argmax(dim=1).cpu())
        expected = len(trainer.predict_dataloaders.dataset)
        if len(indices) != expected:
            rank_zero_warn(f"the submission covers {len(indices)} of {expected} test images (limit_predict_batches?)")
        self.written = self.output_path(trainer)
        write_submission(self.written, indices, labels)
        print(f"Submission ({len(labels)} rows) written to {self.written}")


def _flatten(nested: Any) -> Iterator[int]:
    if isinstance(nested, int):
        yield nested
    else:
        for item in nested:
            yield from _flatten(item)


def unique_by_index(indices: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, values) sorted by dataset index, each index once (DDP pads shards with repeats)."""
    order = torch.argsort(indices, stable=True)
    indices, values = indices[order], values[order]
    keep = torch.ones_like(indices, dtype=torch.bool)
    keep[1:] = indices[1:] != indices[:-1]
    return indices[keep], values[keep]


def write_submission(path: Path, indices: torch.Tensor, labels: torch.Tensor) -> None:
    """Row i of test.csv is ImageId i + 1."""
    frame = pd.DataFrame({SUBMISSION_COLUMNS[0]: indices.numpy() + 1, SUBMISSION_COLUMNS[1]: labels.numpy()})
    with disk_full_is_a_user_error(path), atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
