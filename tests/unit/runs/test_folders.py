"""Run folders: their order, and where `--ckpt_path last` and `best` come from."""

from pathlib import Path

import torch

from digit_recognizer.runs import find_checkpoint, run_dir_of, run_dirs
from digit_recognizer.errors import CheckpointError

from helpers.errors import raises_one_line


def make_run(root: Path, version: int, last: bool = True, best: bool = True) -> Path:
    checkpoints = root / f"version_{version}" / "checkpoints"
    checkpoints.mkdir(parents=True)
    if last:
        callbacks = {  # the every-epoch last.ckpt writer (no monitor) also records a "best" path: itself
            "ModelCheckpoint{'monitor': None}": {"monitor": None, "best_model_path": str(checkpoints / "last.ckpt")},
        }
        if best:
            callbacks["ModelCheckpoint{'monitor': 'val/acc'}"] = {
                "monitor": "val/acc", "best_model_path": str(checkpoints / "best.ckpt")
            }
            torch.save({"state_dict": {}}, checkpoints / "best.ckpt")
        torch.save({"state_dict": {}, "callbacks": callbacks}, checkpoints / "last.ckpt")
    return checkpoints


def test_runs_are_ordered_by_version_number(tmp_path):
    for version in (2, 10, 1):
        make_run(tmp_path, version)
    assert [p.name for p in run_dirs(tmp_path)] == ["version_1", "version_2", "version_10"]


def test_last_and_best_come_from_the_newest_run_with_a_checkpoint(tmp_path):
    make_run(tmp_path, 0)
    newest = make_run(tmp_path, 1)
    make_run(tmp_path, 2, last=False)  # a run that died before its first checkpoint
    assert find_checkpoint(tmp_path, "last") == newest / "last.ckpt"
    assert find_checkpoint(tmp_path, "best") == newest / "best.ckpt"
    assert run_dir_of(newest / "last.ckpt") == newest.parent.resolve()


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with raises_one_line(CheckpointError, match="no run under .* has a checkpoint"):
        find_checkpoint(tmp_path, "last")


def test_best_never_comes_from_an_older_run(tmp_path):
    """After a run that keeps only last.ckpt (best.yaml), `best` must not pick an older model."""
    make_run(tmp_path, 0)
    newest = make_run(tmp_path, 1, best=False)
    assert find_checkpoint(tmp_path, "last") == newest / "last.ckpt"
    with raises_one_line(CheckpointError, match="version_1 records no best checkpoint.*--ckpt_path last"):
        find_checkpoint(tmp_path, "best")
