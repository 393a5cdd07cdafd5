"""SIGTERM and Ctrl-C, from the signal to the exit status: every command stops promptly, saves
what resumes it, leaves no half-written file and no process behind, and exits 143 or 130.

- During a Lightning stage Lightning installs its own SIGTERM handler and stops `fit`, `validate`
  and `test` between batches (its loops raise SIGTERMException); `predict` it would let run to the
  end and write its file, so StopOnSignal stops it at the next batch. Lightning ends a stage that
  Ctrl-C stopped with exit(1); StopOnSignal notes the Ctrl-C, so that `exit_status` says 130.
- Outside a stage (`report`, an ensemble between its members), `sigterm_raises` makes SIGTERM
  raise the same SIGTERMException, so that `finally` blocks run.
- `signals_held` holds both back while a child process starts or the members are stopped;
  `CtrlCHold` holds Ctrl-C back while a multi-step batch trains (training/multi_step.py).
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

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
EXIT_CTRL_C = 128 + signal.SIGINT  # 130

_ctrl_c_ended_a_stage = False  # set by StopOnSignal, read by exit_status: Lightning's exit(1) after Ctrl-C


class StopOnSignal(Callback):
    """Raise SIGTERMException at the start of the prediction batch after a SIGTERM; note a Ctrl-C."""

    def on_predict_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        if getattr(trainer, "received_sigterm", False):
            raise SIGTERMException

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        global _ctrl_c_ended_a_stage
        if isinstance(exception, KeyboardInterrupt):
            _ctrl_c_ended_a_stage = True


def exit_status(exception: BaseException) -> int | None:
    """143 after SIGTERM, 130 after Ctrl-C (also when Lightning turned it into exit(1)), else None."""
    if isinstance(exception, SIGTERMException):
        return EXIT_SIGTERM
    if isinstance(exception, KeyboardInterrupt):
        return EXIT_CTRL_C
    if isinstance(exception, SystemExit) and exception.code == 1 and _ctrl_c_ended_a_stage:
        return EXIT_CTRL_C
    return None


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


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and Ctrl-C back until the block is done, then deliver them to the usual handlers.

    Popen forks, then waits until the child has exec'd: an exception raised meanwhile (SIGTERMException,
    KeyboardInterrupt) would leave the new child running, missing from the list that stops them.
    """
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


class CtrlCHold:
    """Note a Ctrl-C during `holding()`; raise it as KeyboardInterrupt when `holding()` is next entered.

    A run stopped by Ctrl-C resumes exactly only if the stop falls between Lightning batches: the
    checkpoint counts finished batches, and a batch of K steps half-trained when KeyboardInterrupt
    arrives would be trained again from its start on weights that already took some of its steps.
    Lightning acts on SIGTERM only between batches, but Python raises KeyboardInterrupt wherever it
    lands; so while a group trains, Ctrl-C is only noted, and it is raised before the next group
    starts, as a Ctrl-C at a batch's start is with one step a batch.
    """

    def __init__(self) -> None:
        self.pending = False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    @contextmanager
    def holding(self) -> Iterator[None]:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        # Only the main thread may set handlers; a handler other than Python's own belongs to
        # someone who wants Ctrl-C their way: leave both alone.
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
