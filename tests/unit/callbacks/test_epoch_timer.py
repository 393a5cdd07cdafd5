"""EpochTimer: an epoch resumed midway is timed from the resume."""

from __future__ import annotations

import time

import pytest
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.callbacks import EpochTimer
from digit_recognizer.resume import InterruptCheckpoint
from digit_recognizer.classifier import DigitClassifier

from helpers.data import tiny_datamodule
from helpers.training import tiny_trainer


class StopInSecondEpoch(Callback):
    """SIGTERM's graceful stop after the first batch of epoch 1: a mid-epoch last.ckpt."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 1 and batch_idx == 0:
            raise SIGTERMException()


def test_an_epoch_resumed_midway_is_timed_from_the_resume(tiny_data, tmp_path):
    # Lightning skips on_train_epoch_start for an epoch resumed midway; the clock must still start.
    def fit(*callbacks, ckpt_path=None):
        last = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last")
        trainer = tiny_trainer(tmp_path, max_epochs=2, limit_val_batches=1,
                               callbacks=[last, InterruptCheckpoint(), EpochTimer(), *callbacks])
        trainer.fit(DigitClassifier(), tiny_datamodule(tiny_data, tmp_path), ckpt_path=ckpt_path)
        return trainer

    with pytest.raises(SIGTERMException):
        fit(StopInSecondEpoch())
    started = time.perf_counter()
    resumed = fit(ckpt_path=tmp_path / "checkpoints" / "last.ckpt")  # finishes epoch 1 only
    assert resumed.global_step == 6
    assert 0 < resumed.callback_metrics["time/epoch_seconds"].item() < time.perf_counter() - started
