"""A callback the resume tests add to a `fit` subprocess (`--trainer.callbacks+=helpers.signal_at.X`,
with tests/ on its PYTHONPATH: helpers.cli.TESTS_ON_PATH as the subprocess's `env`): it signals
its own process at a chosen batch, as a user's Ctrl-C or a scheduler's SIGTERM would."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lightning.pytorch import Callback


class SignalAt(Callback):
    """Send `signum` to this process at the start of batch `batch` of epoch `epoch`, once."""

    def __init__(self, epoch: int, batch: int, signum: int = int(signal.SIGTERM)) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.sent and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SignalAtPredictBatch(Callback):
    """Send `signum` at the start of prediction (or validation, test) batch `batch`, once."""

    def __init__(self, batch: int = 0, signum: int = int(signal.SIGTERM)) -> None:
        self.batch, self.signum = batch, signum
        self.sent = False

    def _maybe(self, batch_idx: int) -> None:
        if not self.sent and batch_idx == self.batch:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._maybe(batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._maybe(batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._maybe(batch_idx)



class SignalAtStep(Callback):
    """Send `signum` just before optimizer step number `step` (counted from 1) is taken, once: with
    several steps a batch (data.steps_per_batch), a signal inside a batch."""

    def __init__(self, step: int, signum: int = int(signal.SIGINT)) -> None:
        self.step, self.signum = step, signum
        self.sent = False

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.sent and trainer.global_step + 1 == self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SignalAtEpochEnd(Callback):
    """Send `signum` at the end of epoch `epoch`, once: in `on_validation_end` (hook "validation")
    or in `on_train_epoch_end` (hook "train"), after the epoch's last batch trained."""

    def __init__(self, epoch: int, hook: str = "train", signum: int = int(signal.SIGTERM)) -> None:
        if hook not in ("validation", "train"):
            raise ValueError(f"hook must be 'validation' or 'train', not {hook!r}")
        self.epoch, self.hook, self.signum = epoch, hook, signum
        self.sent = False

    def _maybe(self, trainer, hook: str) -> None:
        if not self.sent and hook == self.hook and trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._maybe(trainer, "validation")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._maybe(trainer, "train")


class SignalAtFitEnd(Callback):
    """Send `signum` once `fit` has trained every epoch: in `on_train_end` (hook "train_end"), where
    Lightning still records a SIGTERM but no loop looks at it any more, or in `on_fit_end` (hook
    "fit_end"), after Lightning has given the process its own handlers back."""

    def __init__(self, hook: str = "train_end", signum: int = int(signal.SIGTERM)) -> None:
        if hook not in ("train_end", "fit_end"):
            raise ValueError(f"hook must be 'train_end' or 'fit_end', not {hook!r}")
        self.hook, self.signum = hook, signum
        self.sent = False

    def _maybe(self, hook: str) -> None:
        if not self.sent and hook == self.hook:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_end(self, trainer, pl_module) -> None:
        self._maybe("train_end")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._maybe("fit_end")


class SignalOnceAcrossRuns(Callback):
    """Send `signum` at the start of batch `batch` of the run whose validation fold is `fold`
    (data.fold), then create `marker`: a command run again with the same arguments (an ensemble
    continued) is not signalled a second time."""

    def __init__(self, marker: str, fold: int, batch: int = 1, signum: int = int(signal.SIGTERM)) -> None:
        self.marker, self.fold, self.batch, self.signum = marker, fold, batch, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if (batch_idx == self.batch and trainer.datamodule.hparams.fold == self.fold
                and not os.path.exists(self.marker)):
            open(self.marker, "w").close()
            os.kill(os.getpid(), self.signum)


class SlowPredictBatches(Callback):
    """Each prediction batch takes `seconds` longer (a long `predict` on tiny data), and process 0
    creates the file `started` at the first one: a test then signals the running command."""

    def __init__(self, started: str, seconds: float = 1.0) -> None:
        self.started, self.seconds = started, seconds

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.is_global_zero and batch_idx == 0:
            Path(self.started).touch()
        time.sleep(self.seconds)
