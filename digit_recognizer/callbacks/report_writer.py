"""ReportWriter: the run's figures as PNGs beside its event files once `fit` ends."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from digit_recognizer.errors import UserError
from digit_recognizer.report import write_report
from digit_recognizer.runs import tensorboard_logger


class ReportWriter(Callback):
    """Run `report` on the TensorBoard run folder at the end of `fit` (process 0 only)."""

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = tensorboard_logger(trainer)  # not trainer.log_dir: that is a collective call under DDP
        if logger is None:
            rank_zero_warn("ReportWriter reads a TensorBoardLogger's event files; this run has none")
            return
        logger.save()  # flush pending events: Lightning finalizes its loggers only after this hook
        try:
            written = write_report(logger.log_dir)
        except UserError as exc:  # e.g. a run that never validated nor finished an epoch
            rank_zero_warn(f"no figures written: {exc}")
            return
        rank_zero_info("Figures written: " + ", ".join(str(path) for path in written))
