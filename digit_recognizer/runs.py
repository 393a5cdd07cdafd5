"""Where runs keep their checkpoints, and how `last` and `best` find them in a new process.

A run is a TensorBoard logger folder, `lightning_logs/version_N/` (claimed by RunLogger), with its
checkpoints in `checkpoints/`. Lightning resolves `--ckpt_path last` only inside the *new* run's folder, so it
silently starts from scratch; here `last` and `best` mean the newest earlier run's checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.checkpoints import read_checkpoint
from digit_recognizer.constants import EPOCH_TAG
from digit_recognizer.errors import CheckpointError

LAST = "last.ckpt"
_FILE_LOGGERS = ("TensorBoardLogger", "CSVLogger", "RunLogger")
_VERSION = re.compile(r"^version_(\d+)$")


def run_dirs(log_root: Path) -> list[Path]:
    """The run folders under `log_root`, oldest version first."""
    if not log_root.is_dir():
        return []
    runs = [(int(m.group(1)), p) for p in log_root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [path for _, path in sorted(runs)]


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


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint belongs to (the folder holding `checkpoints/`)."""
    folder = Path(checkpoint).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def find_checkpoint(log_root: Path, which: str) -> Path:
    """The `last` checkpoint of the newest run under `log_root` that has one, or that run's `best`.

    `best` never falls back to an older run: after training a recipe that keeps only last.ckpt
    (configs/best.yaml), an older run's best would be a different model.
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


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger that claims a new run folder with one `mkdir`, and can take back what it wrote.

    TensorBoardLogger picks "highest version + 1" and creates the folder later, so two runs started
    at the same moment can pick the same number; an exclusive mkdir makes the second one move on.
    Lightning creates the event file while it sets a run up, before the data is even read, so a
    command that fails there would leave an empty run folder (or an empty event file in the run it
    was to score); `discard` removes exactly what this process added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claimed: Path | None = None
        self._made_root = False
        self._files_before: set[Path] | None = None
        self._logged_metrics = False  # once it has, its events are the run's record: discard keeps them

    def _get_next_version(self) -> int:
        if rank_zero_only.rank != 0:  # only process 0 claims; the others get its folder by broadcast
            return super()._get_next_version()
        root = Path(self.root_dir)
        self._made_root = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        version = max((int(m.group(1)) for p in root.iterdir() if (m := _VERSION.match(p.name))), default=-1) + 1
        while True:
            try:
                (root / f"version_{version}").mkdir()
            except FileExistsError:
                version += 1
                continue
            self._claimed = root / f"version_{version}"
            return version

    @property
    @rank_zero_experiment
    def experiment(self) -> SummaryWriter:
        if self._experiment is None:
            folder = Path(self.log_dir)
            self._files_before = set(folder.iterdir()) if folder.is_dir() else set()
        return super().experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Lightning's epoch counter, which it logs beside every metric as "epoch", as EPOCH_TAG:
        TensorBoard's Time Series sorts groups by name and expands the first two, and "epoch" led."""
        if "epoch" in metrics:
            metrics = {(EPOCH_TAG if key == "epoch" else key): value for key, value in metrics.items()}
        super().log_metrics(metrics, step)
        self._logged_metrics = True

    def discard(self) -> None:
        """Close the event file and remove what this process added to the run folder, unless it
        has logged metrics: a run that failed after some epochs (a full disk) keeps their record."""
        if self._experiment is not None:
            self._experiment.close()
            self._experiment = None
        if self._logged_metrics:
            return
        folder = Path(self.log_dir)
        if self._files_before is not None and folder.is_dir():
            for path in set(folder.iterdir()) - self._files_before:
                if path.name.startswith("events.out.tfevents.") or path.name == "hparams.yaml":
                    path.unlink()
        self._files_before = None
        for made, empty in ((self._claimed is not None, self._claimed), (self._made_root, Path(self.root_dir))):
            if made and empty is not None and empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
