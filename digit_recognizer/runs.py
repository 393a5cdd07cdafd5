"""Where runs keep their checkpoints, and how `last` and `best` find them in a new process.

A run is a TensorBoard logger folder, `lightning_logs/version_N/`, with its checkpoints in
`checkpoints/`. Lightning resolves `--ckpt_path last` only inside the *new* run's folder, so it
silently starts from scratch; here `last` and `best` mean the newest earlier run's checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from digit_recognizer.checkpoints import read_checkpoint
from digit_recognizer.errors import CheckpointError

LAST = "last.ckpt"
_VERSION = re.compile(r"^version_(\d+)$")


def run_dirs(log_root: Path) -> list[Path]:
    """The run folders under `log_root`, oldest version first."""
    if not log_root.is_dir():
        return []
    runs = [(int(m.group(1)), p) for p in log_root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [path for _, path in sorted(runs)]


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
