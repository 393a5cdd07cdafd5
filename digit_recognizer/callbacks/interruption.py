"""InterruptCheckpoint: Ctrl-C or SIGTERM during `fit` leaves a checkpoint to resume from.

Lightning turns Ctrl-C (KeyboardInterrupt, at once) and SIGTERM (at the next batch boundary) into
a graceful stop and tells the callbacks through `on_exception`; this one then saves the run's
`last.ckpt`, which `--ckpt_path last` resumes.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.runs import LAST


class InterruptCheckpoint(Callback):
    """On Ctrl-C or SIGTERM during `fit`, save `checkpoints/last.ckpt` of the run (atomically)."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.global_step == 0:  # nothing trained yet (or still restoring): nothing to keep
            return
        if trainer.validating or trainer.sanity_checking:
            _end_validation_weight_swaps(trainer, pl_module)
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        signal_name = "Ctrl-C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        rank_zero_info(
            f"{signal_name}: stopped in epoch {trainer.current_epoch} at step {trainer.global_step}; "
            f"checkpoint saved to {path}; continue with --ckpt_path last"
        )

    @staticmethod
    def checkpoint_path(trainer: Trainer) -> Path:
        """last.ckpt where the run's ModelCheckpoint keeps it, else in the run's checkpoints/ folder."""
        checkpoint = trainer.checkpoint_callback
        folder = getattr(checkpoint, "dirpath", None) or Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        return Path(folder) / LAST


def _end_validation_weight_swaps(trainer: Trainer, pl_module: LightningModule) -> None:
    """Put the trained weights back before saving from inside a validation epoch.

    Weight averaging (SWAWeightAveraging in configs/best.yaml, or EMAWeightAveraging) swaps the
    averaged weights into the model for validation and back at the epoch's end; a stop in between
    would otherwise save the two sets the wrong way round.
    """
    for callback in trainer.callbacks:
        if isinstance(callback, WeightAveraging):
            callback.on_validation_epoch_end(trainer, pl_module)
