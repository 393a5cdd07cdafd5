"""StopOnSignal: SIGTERM stops `validate`, `test` and `predict` promptly, as it stops `fit`.

Lightning turns SIGTERM into a flag for every stage but acts on it only in the training loop, so
a SIGTERM during `predict` would let it run to the end and write its file. This callback raises
Lightning's own SIGTERMException at the next evaluation or prediction batch instead: the command
exits with 143 and writes nothing (the submission is written only once every image is predicted).
It also records a Ctrl-C, which Lightning ends with exit status 1, so that the CLI exits with 130.

Outside a Lightning stage (`report`, an ensemble between and around its members, a member's
`on_fit_end`), `sigterm_raises` makes SIGTERM raise the same exception.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

interrupted_by_ctrl_c = False  # read by digit_recognizer.cli.main after Lightning's exit


class StopOnSignal(Callback):
    """Raise SIGTERMException at the start of the batch after a SIGTERM, in every evaluating stage."""

    @staticmethod
    def _check(trainer: Trainer) -> None:
        if getattr(trainer, "received_sigterm", False):
            raise SIGTERMException

    def on_validation_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if not trainer.training:  # within fit, the training loop acts on it
            self._check(trainer)

    def on_test_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:
        self._check(trainer)

    def on_predict_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        self._check(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        global interrupted_by_ctrl_c
        if isinstance(exception, KeyboardInterrupt):
            interrupted_by_ctrl_c = True


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within: a SIGTERM that no Lightning stage handles raises SIGTERMException.

    SIGTERM's default action ends the process at once: no exit status 143, no `finally`, so an
    atomic write leaves its temporary file, a half-written projector embedding stays and a parallel
    ensemble's member processes go on training. During a stage Lightning installs its own handler,
    which calls this one as well; raising there would stop training in mid-step, so this one acts
    only while it is the process's handler, and Lightning stops at the next batch boundary.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if signal.getsignal(signal.SIGTERM) is handler:
            raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
