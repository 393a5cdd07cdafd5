"""SubmissionWriter: `predict` -> a Kaggle submission CSV, complete or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from digit_recognizer.constants import NUM_CLASSES, SUBMISSION_COLUMNS
from digit_recognizer.errors import UserError
from digit_recognizer.files import atomic_path, disk_full_is_a_user_error
from digit_recognizer.names import SUBMISSION_FILE
from digit_recognizer.runs import run_dir_of, run_folder


class SubmissionWriter(BasePredictionWriter):
    """Write `ImageId,Label` (ImageId from 1, in test.csv's row order) after `predict`; with
    `--data.images`, print each file's label and probability (and write them to `path` if given).

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
        return run_folder(trainer) / SUBMISSION_FILE

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
        indices, probabilities = unique_by_index(indices.cpu(), probabilities.float().cpu())
        confidence, labels = probabilities.max(dim=1)
        expected = len(trainer.predict_dataloaders.dataset)
        if len(indices) != expected:
            rank_zero_warn(f"the submission covers {len(indices)} of {expected} test images (limit_predict_batches?)")
        image_paths = getattr(trainer.datamodule, "image_paths", None)
        if image_paths:  # the user's own images: a label per file, and a CSV only when asked for
            print("\n".join(f"{image_paths[i]}: {label} (probability {p:.3f})"
                            for i, label, p in zip(indices.tolist(), labels.tolist(), confidence.tolist())))
            if self.path:
                self.written = Path(self.path)
                write_image_labels(self.written, [image_paths[i] for i in indices.tolist()], labels, confidence)
                print(f"Labels of {len(labels)} images written to {self.written}")
            return
        self.written = self.output_path(trainer)
        write_submission(self.written, indices, labels)
        print(submission_summary(self.written, labels, getattr(trainer.datamodule, "hparams", {}).get("source")))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """An unusable target is an error before any image is predicted, not after."""
        own_images = getattr(trainer.datamodule, "hparams", {}).get("images")
        if trainer.state.fn == TrainerFn.PREDICTING and trainer.is_global_zero and (self.path or not own_images):
            check_writable(self.output_path(trainer))


def check_writable(path: Path) -> None:
    """A one-line UserError unless a file can be written at `path` (its folder may not exist yet)."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; --submission.path takes a file name, e.g. {path / SUBMISSION_FILE}")
    folder = next((parent for parent in (path.parent, *path.parent.parents) if parent.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{path}: cannot write the submission there (no write permission in {folder})")


def submission_summary(path: Path, labels: torch.Tensor, source: str | None) -> str:
    """What was written, how many of each digit, and how to upload it."""
    counts = torch.bincount(labels, minlength=NUM_CLASSES).tolist()
    lines = [f"Submission ({len(labels)} rows) written to {path}",
             "Digits: " + ", ".join(f"{digit}: {count}" for digit, count in enumerate(counts))]
    if source == "mnist":
        lines.append("These are MNIST's test images (--data.source mnist): not a Kaggle submission.")
    else:
        lines.append(f"Upload: kaggle competitions submit -c digit-recognizer -f {path} -m \"your message\"")
    return "\n".join(lines)


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


def write_image_labels(path: Path, files: list[Path], labels: torch.Tensor, confidence: torch.Tensor) -> None:
    """`file,label,probability`, one row per image, in the order the files were named."""
    frame = pd.DataFrame({"file": [str(f) for f in files], "label": labels.numpy(),
                          "probability": confidence.numpy().round(6)})
    with disk_full_is_a_user_error(path), atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_submission(path: Path, indices: torch.Tensor, labels: torch.Tensor) -> None:
    """Row i of test.csv is ImageId i + 1."""
    frame = pd.DataFrame({SUBMISSION_COLUMNS[0]: indices.numpy() + 1, SUBMISSION_COLUMNS[1]: labels.numpy()})
    with disk_full_is_a_user_error(path), atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
