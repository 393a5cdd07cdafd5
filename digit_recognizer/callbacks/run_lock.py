"""TrainingLock: a run folder says, while it trains, that it is in use.

`fit --ckpt_path last` resumes the newest run. If that run is still training (another terminal,
a job still queued on the same disk), a second process would write into the same folder and
checkpoint. The training process holds an advisory lock (flock) on `.training.lock` in its run
folder; the kernel releases it however the process ends, kill -9 included, so a stale lock is
impossible and no clean-up is needed.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from lightning.pytorch import Callback, LightningModule, Trainer

LOCK_FILE = ".training.lock"


def training_pid(run_dir: Path) -> int | None:
    """The pid of the process training `run_dir` now, or None when none is."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    with open(path, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class TrainingLock(Callback):
    """Hold the run folder's lock from the start of `fit` to its end (process 0)."""

    def __init__(self) -> None:
        self._handle: IO[str] | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The logger's folder, not trainer.log_dir: that is a collective call under DDP.
        log_dir = getattr(trainer.logger, "log_dir", None)
        if not trainer.is_global_zero or log_dir is None:
            return
        folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._handle = open(folder / LOCK_FILE, "a+")
        fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the CLI checked it was free
        self._handle.truncate(0)
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._handle is not None:
            self._handle.truncate(0)  # no pid of a finished run left behind
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
