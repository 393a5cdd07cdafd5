"""Ctrl-C held back while a group of optimizer steps trains (data.steps_per_batch above 1).

A run stopped by Ctrl-C resumes exactly only if the stop falls between Lightning batches: the
checkpoint counts finished batches, and a batch of K steps half-trained when KeyboardInterrupt
arrives would be trained again from its start on weights that already took some of its steps.
Lightning acts on SIGTERM only between batches, but Python raises KeyboardInterrupt wherever it
lands; so while a group trains, Ctrl-C is only noted, and it is raised before the next group
starts, as a Ctrl-C at a batch's start is with one step a batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class CtrlCHold:
    """Note a Ctrl-C during `holding()`; raise it as KeyboardInterrupt when `holding()` is next entered."""

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
