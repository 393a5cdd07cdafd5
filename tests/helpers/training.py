"""Training in the test's own process."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer


def tiny_trainer(root: Path, **settings) -> Trainer:
    """An in-process Trainer for tiny data: 3 training batches an epoch, no logger, no output."""
    return Trainer(default_root_dir=root, limit_train_batches=3, num_sanity_val_steps=0, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, **settings)
