"""Run folders: where runs keep their checkpoints, and how `last` and `best` find them in a new process.

A run is a TensorBoard logger folder, `lightning_logs/version_N/` (claimed by RunLogger), with its
checkpoints in `checkpoints/`. Lightning resolves `--ckpt_path last` only inside the *new* run's folder, so it
silently starts from scratch; here `last` and `best` mean the newest earlier run's checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from digit_recognizer.checkpoints import read_checkpoint
from digit_recognizer.names import LAST
from digit_recognizer.errors import CheckpointError

_FILE_LOGGERS = ("TensorBoardLogger", "CSVLogger", "RunLogger")
RUN_PREFIX, ENSEMBLE_PREFIX = "version_", "ensemble_"  # lightning_logs/version_N/, lightning_logs/ensemble_N/


def run_dirs(log_root: Path) -> list[Path]:
    """The run folders under `log_root`, oldest version first."""
    return numbered_folders(log_root, RUN_PREFIX)


def file_logger(logger: object) -> Namespace | None:
    """The configured TensorBoard or CSV logger, when exactly one is given as class_path/init_args."""
    if isinstance(logger, list) and len(logger) == 1:
        logger = logger[0]
    if isinstance(logger, Namespace) and str(logger.get("class_path", "")).endswith(_FILE_LOGGERS):
        return logger
    return None


def log_root_of(trainer: Namespace) -> Path:
    """The folder that holds the version_N run folders, from the parsed `trainer` settings."""
    logger, default_root_dir = file_logger(trainer.logger), trainer.default_root_dir
    if logger is None:  # Lightning's default logger
        return Path(default_root_dir or ".") / "lightning_logs"
    args = logger.init_args
    return Path(args.get("save_dir") or default_root_dir or ".") / (args.get("name") or "")


def run_folder(trainer: Trainer) -> Path:
    """The folder of the run's logger (default_root_dir without one), read on this process alone.

    Not `trainer.log_dir`: under DDP that broadcasts process 0's answer, a collective call that
    hangs both processes when process 0 alone makes it (in a hook that runs on process 0 only).
    On the other processes a new run's logger may not know process 0's folder: use it there only
    for a run already chosen (`--ckpt_path`), or not at all.
    """
    log_dir = getattr(trainer.logger, "log_dir", None)
    return Path(log_dir or trainer.default_root_dir)


def tensorboard_logger(trainer: Trainer) -> TensorBoardLogger | None:
    """The run's TensorBoardLogger, if it has one."""
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint belongs to (the folder holding `checkpoints/`)."""
    folder = Path(checkpoint).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def find_checkpoint(log_root: Path, which: str) -> Path:
    """The `last` checkpoint of the newest run under `log_root` that has one, or that run's `best`.

    `best` never falls back to an older run: after training a recipe that keeps only last.ckpt
    (recipes/best.yaml), an older run's best would be a different model.
    """
    for run in reversed(run_dirs(log_root)):
        last = run / "checkpoints" / LAST
        if not last.is_file():
            continue
        if which == "last":
            return last
        best = _best_recorded_in(last)
        if best is None:
            raise CheckpointError(
                f"--ckpt_path best: {run} records no best checkpoint (no monitored ModelCheckpoint, "
                f"no validation yet, or the file is gone); use --ckpt_path last or a checkpoint file"
            )
        return best
    raise CheckpointError(
        f"--ckpt_path {which}: no run under {log_root} has a checkpoint "
        f"(looked for version_*/checkpoints/{LAST}); pass a checkpoint file instead"
    )


def member_checkpoint(run: Path) -> Path:
    """The checkpoint that stands for a finished run: its recorded best, else its last.ckpt."""
    last = run / "checkpoints" / LAST
    if not last.is_file():
        raise CheckpointError(f"{run}: the run saved no {LAST}")
    return _best_recorded_in(last) or last


def _best_recorded_in(last: Path) -> Path | None:
    """The best checkpoint that the run's ModelCheckpoint recorded in its last.ckpt."""
    for key, callback_state in read_checkpoint(last).get("callbacks", {}).items():
        monitored = callback_state.get("monitor") is not None  # not the every-epoch last.ckpt writer
        if key.startswith("ModelCheckpoint") and monitored and callback_state.get("best_model_path"):
            best = Path(callback_state["best_model_path"])
            if not best.is_absolute():
                best = last.parent / best.name
            if best.is_file():
                return best
    return None


def numbered_folders(root: Path, prefix: str) -> list[Path]:
    """The folders `prefix`N under `root`, lowest N first."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := pattern.match(p.name))] \
        if root.is_dir() else []
    return [path for _, path in sorted(found)]


def claim_folder(root: Path, prefix: str) -> Path:
    """A new, empty folder `prefix`N under `root`, N above every existing one, claimed by one
    exclusive mkdir: two processes that list the folder at the same moment still get two folders."""
    root.mkdir(parents=True, exist_ok=True)
    existing = numbered_folders(root, prefix)
    number = int(existing[-1].name.removeprefix(prefix)) + 1 if existing else 0
    while True:
        try:
            (root / f"{prefix}{number}").mkdir()
            return root / f"{prefix}{number}"
        except FileExistsError:
            number += 1
