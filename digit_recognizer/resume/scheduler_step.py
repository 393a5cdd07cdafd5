"""EpochEndSchedulerStep: a run resumed from an end-of-epoch checkpoint steps its schedulers as the
uninterrupted run did.

Lightning writes the end-of-epoch checkpoint (ModelCheckpoint in the validation or train epoch-end
hooks) before it steps the epoch's learning-rate schedulers, and when it resumes from that
checkpoint it skips the step on purpose: it does not save the metric a ReduceLROnPlateau needs
(Lightning issues #1772, #14699; in lightning 2.6 `_FitLoop.on_advance_end` steps only when not
restarting). The resumed run then runs one plateau step short: another `best`, another learning
rate, other weights. This callback saves the pending step with the metric it needs, and replays it
before the resumed run's first batch.

Under manual optimization (data.steps_per_batch above 1) Lightning steps no scheduler at all
(`_TrainingEpochLoop._update_learning_rates` returns at once); the module steps the step-interval
ones, and this callback takes each epoch's step at the next epoch's start, which is where Lightning
would have taken it: nothing runs between its step at the epoch's end and that hook, and the
epoch-end checkpoint is written before either. It records the last epoch it stepped for, so that
a resumed run takes no step twice.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.types import LRSchedulerConfig

from digit_recognizer.lightning_internals import epoch_batches_all_fetched


class EpochEndSchedulerStep(Callback):
    """Keep the epoch's pending scheduler step in end-of-epoch checkpoints; replay it on resume."""

    def __init__(self) -> None:
        self._trainer: Trainer | None = None
        self._to_replay: dict[str, Any] | None = None
        self._replayed_epoch: int | None = None
        self._last_stepped: int | None = None  # manual optimization: the last epoch whose step was taken

    @staticmethod
    def _epoch_schedulers(trainer: Trainer) -> list[LRSchedulerConfig]:
        return [config for config in trainer.lr_scheduler_configs if config.interval == "epoch"]

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {} if self._last_stepped is None else {"last_stepped_epoch": self._last_stepped}
        trainer = self._trainer
        if trainer is None or not trainer.training:
            return state
        loop = trainer.fit_loop
        batches = loop.epoch_loop.batch_progress.current
        epoch = loop.epoch_progress.current
        # Saved after every batch of the epoch trained, before the epoch-end scheduler step: pending.
        # Not when Ctrl-C stopped the epoch's last batch (fetched, so Lightning's "last batch"
        # already, but not trained: the resumed run trains it before the epoch ends), and not once
        # the epoch is completed (`completed` is counted after that step): Lightning acts on a SIGTERM
        # that came in at an epoch's end only then, in `_FitLoop.on_advance_end`, and
        # InterruptCheckpoint saves that state. (`current_epoch` is `completed`: compare `started`.)
        all_trained = epoch_batches_all_fetched(trainer) and batches.completed == batches.ready
        if not all_trained or epoch.completed >= epoch.started:
            return state
        metrics = {}
        for config in self._epoch_schedulers(trainer):
            if config.monitor is not None and config.monitor in trainer.callback_metrics:
                metrics[config.monitor] = float(trainer.callback_metrics[config.monitor])
        return {**state, "epoch": trainer.current_epoch, "metrics": metrics}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_stepped = state_dict.get("last_stepped_epoch")
        self._to_replay = state_dict if "epoch" in state_dict else None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """After the restore, before the resumed run's first batch (also when it resumes mid-epoch)."""
        pending, self._to_replay = self._to_replay, None
        if pending is not None:
            self._step(trainer, pl_module, pending["epoch"], pending["metrics"])
            self._replayed_epoch = pending["epoch"]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Still restarting at an epoch's end: Lightning will not step this epoch's schedulers."""
        epoch = trainer.current_epoch
        if trainer.fit_loop.restarting and epoch != self._replayed_epoch:
            self._step(trainer, pl_module, epoch, _scalars(trainer))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Manual optimization: the previous epoch's step, where Lightning would have taken it."""
        if not pl_module.automatic_optimization and trainer.current_epoch > 0:
            self._step(trainer, pl_module, trainer.current_epoch - 1, _scalars(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Manual optimization: the last epoch's step, if it trained all its batches (as Lightning)."""
        if not pl_module.automatic_optimization and epoch_batches_all_fetched(trainer):
            self._step(trainer, pl_module, trainer.current_epoch - 1, _scalars(trainer))

    def _step(self, trainer: Trainer, pl_module: LightningModule, epoch: int, metrics: dict[str, float]) -> None:
        """Each epoch-interval scheduler's step for `epoch`, as Lightning's `_update_learning_rates` takes
        it; once per epoch (a resumed run may reach an epoch's step again)."""
        if self._last_stepped is not None and epoch <= self._last_stepped:
            return
        self._last_stepped = epoch if not pl_module.automatic_optimization else None
        for config in self._epoch_schedulers(trainer):
            if config.frequency != 1 and (epoch + 1) % config.frequency:
                continue
            if config.monitor is None:
                pl_module.lr_scheduler_step(config.scheduler, None)
            elif config.monitor in metrics:  # as Lightning: no metric (strict=False), no step
                pl_module.lr_scheduler_step(config.scheduler, torch.tensor(metrics[config.monitor]))


def _scalars(trainer: Trainer) -> dict[str, float]:
    """The run's logged one-value metrics: what a plateau scheduler may watch."""
    return {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
