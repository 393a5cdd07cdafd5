"""RunConfigSaver: a run's config.yaml is written when its training starts, not at setup.

A resumed run logs into its old folder and rewrites that folder's config.yaml. LightningCLI's
SaveConfigCallback writes it in `setup`, before the checkpoint is restored, so a resume that a
later check refuses (a one-cycle schedule of another length, see `DigitClassifier.on_train_start`)
would leave a config.yaml describing a run that never happened. Writing before the first training
batch (every start and resume reaches it, unlike `on_train_epoch_start`, which a resume in
mid-epoch skips) keeps the old file unless training really continues. Validate, test and predict
log into the run folder of the checkpoint they score, so they save theirs at setup under their own
name (`predict_config.yaml`, ...): config.yaml stays the record of how the run was trained.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.trainer.states import TrainerFn


class RunConfigSaver(SaveConfigCallback):
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            self.config_filename = f"{TrainerFn(stage).value}_config.yaml"
            super().setup(trainer, pl_module, stage)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        super().setup(trainer, pl_module, "fit")  # returns at once after the first time (`already_saved`)
