"""TrainingLock: a run folder says, while it trains, that it is in use.

`fit --ckpt_path last` resumes the newest run. If that run is still training (another terminal,
a job still queued on the same disk), a second process would write into the same folder and
checkpoint. The training process holds a lock on `.training.lock` in its run folder through
`filelock` (flock on Linux and macOS, msvcrt on Windows): the operating system releases it however
the process ends, kill -9 included, so a stale lock is impossible and no clean-up is needed. The
holder's pid is in `.training.pid` beside it, for the error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout
from lightning.pytorch import Callback, LightningModule, Trainer

from digit_recognizer.runs.folders import run_folder

LOCK_FILE = ".training.lock"
PID_FILE = ".training.pid"


def training_pid(run_dir: Path) -> int | None:
    """The pid of the process training `run_dir` now (-1 if it is unknown), or None when none is."""
    if not (run_dir / LOCK_FILE).is_file():
        return None
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        text = (run_dir / PID_FILE).read_text().strip() if (run_dir / PID_FILE).is_file() else ""
        return int(text) if text.isdigit() else -1
    lock.release()
    return None


class TrainingLock(Callback):
    """Hold the run folder's lock from the start of `fit` to its end (process 0)."""

    def __init__(self) -> None:
        self._lock: FileLock | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or trainer.logger is None:
            return
        folder = run_folder(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(folder / LOCK_FILE, timeout=0)
        self._lock.acquire()  # the CLI checked it was free
        (folder / PID_FILE).write_text(str(os.getpid()))

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._lock is not None:
            (Path(self._lock.lock_file).parent / PID_FILE).unlink(missing_ok=True)  # no pid of a finished run left
            self._lock.release()
            self._lock = None
