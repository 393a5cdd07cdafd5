"""EpochTimer: each epoch's duration and training throughput, as scalars in TensorBoard."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class EpochTimer(Callback):
    """Log each training epoch's duration (validation included) and training throughput
    (training images per second of training time, all processes together)."""

    def __init__(self) -> None:
        self.started = self.validation_started = self.validation_seconds = 0.0
        self.images = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed mid-epoch skips that epoch's on_train_epoch_start: time the rest from here.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started, self.validation_seconds, self.images = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.images += len(batch[0])

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validation_started = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validation_seconds += time.perf_counter() - self.validation_started

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        seconds = time.perf_counter() - self.started
        training_seconds = max(seconds - self.validation_seconds, 1e-9)
        pl_module.log("time/epoch_seconds", seconds, reduce_fx="max", sync_dist=True)
        pl_module.log("time/images_per_second", self.images / training_seconds, reduce_fx="sum", sync_dist=True)
