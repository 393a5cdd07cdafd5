"""InterruptCheckpoint: Ctrl-C or SIGTERM during `fit` leaves a checkpoint to resume from.

Lightning turns Ctrl-C (KeyboardInterrupt, at once) and SIGTERM (at the next batch boundary) into
a graceful stop and tells the callbacks through `on_exception`; this one then saves the run's
`last.ckpt`, which `--ckpt_path last` resumes.

A SIGTERM that comes in at an epoch's end (in its validation, in an epoch-end hook) is acted on by
Lightning 2.6 once the epoch is complete: `_TrainingEpochLoop.on_advance_end` skips its check after
the last batch, and `_FitLoop.on_advance_end` raises SIGTERMException after the epoch-end hooks, the
epoch's scheduler step and `epoch_progress.increment_completed()`; nothing resets
`trainer.received_sigterm` in between. The checkpoint saved then is that of a finished epoch
(EpochEndSchedulerStep saves no pending step for it). After the run's final epoch there is nothing
left to train: the `last.ckpt` its ModelCheckpoint wrote at that epoch's end is the uninterrupted
run's own, and it is kept as it is (the exit status is still 143).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.names import LAST
from digit_recognizer.runs import run_folder


class InterruptCheckpoint(Callback):
    """On Ctrl-C or SIGTERM during `fit`, save `checkpoints/last.ckpt` of the run (atomically)."""

    def __init__(self) -> None:
        self._averages_swapped_in = False  # between a validation epoch's start and end hooks
        self._saved_at_step: int | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._averages_swapped_in = True

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._averages_swapped_in = False

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._saved_at_step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.global_step == 0:  # nothing trained yet (or still restoring): nothing to keep
            return
        signal_name = "Ctrl-C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        path = self.checkpoint_path(trainer)
        if trainer.fit_loop.done and self._saved_at_step == trainer.global_step and path.is_file():
            rank_zero_info(f"{signal_name} after the last epoch: the run is complete in {path}")
            return
        if self._averages_swapped_in:
            _end_validation_weight_swaps(trainer, pl_module)
            self._averages_swapped_in = False
        trainer.save_checkpoint(path)
        rank_zero_info(
            f"{signal_name}: stopped in epoch {trainer.current_epoch} at step {trainer.global_step}; "
            f"checkpoint saved to {path}; continue with --ckpt_path last"
        )

    @staticmethod
    def checkpoint_path(trainer: Trainer) -> Path:
        """last.ckpt where the run's ModelCheckpoint keeps it, else in the run's checkpoints/ folder."""
        checkpoint = trainer.checkpoint_callback
        folder = getattr(checkpoint, "dirpath", None) or run_folder(trainer) / "checkpoints"
        return Path(folder) / LAST


def _end_validation_weight_swaps(trainer: Trainer, pl_module: LightningModule) -> None:
    """Put the trained weights back before saving from inside a validation epoch.

    Weight averaging (SWAWeightAveraging in recipes/best.yaml, or EMAWeightAveraging) swaps the
    averaged weights into the model in `on_validation_epoch_start` and back in
    `on_validation_epoch_end`; a stop in between would otherwise save the two sets the wrong way
    round. InterruptCheckpoint follows those two hooks itself: `trainer.validating` is still true in
    `on_validation_end`, after the swap back, where a second swap would save them the wrong way round.
    """
    for callback in trainer.callbacks:
        if isinstance(callback, WeightAveraging):
            callback.on_validation_epoch_end(trainer, pl_module)
