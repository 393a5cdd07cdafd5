"""The Kaggle submission: ImageId from 1, one row per test image, written atomically."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from digit_recognizer.callbacks.submission import unique_by_index, write_submission
from digit_recognizer.runs import find_checkpoint, run_dir_of, run_dirs
from digit_recognizer.errors import CheckpointError
from digit_recognizer.files import _UMASK, atomic_path

from conftest import raises_one_line


def test_submission_format(tmp_path):
    path = tmp_path / "sub" / "submission.csv"
    path.parent.mkdir()
    write_submission(path, torch.arange(5), torch.tensor([7, 2, 1, 0, 4]))
    assert path.read_text().splitlines() == ["ImageId,Label", "1,7", "2,2", "3,1", "4,0", "5,4"]
    assert list(path.parent.iterdir()) == [path], "no temporary file may be left behind"


def test_padded_ddp_predictions_are_written_once_in_order():
    # Two processes, 5 images: DistributedSampler gives rank 0 [0, 2, 4] and rank 1 [1, 3, 0].
    indices = torch.tensor([0, 2, 4, 1, 3, 0])
    labels = torch.tensor([10, 12, 14, 11, 13, 10])
    unique_indices, unique_labels = unique_by_index(indices, labels)
    assert unique_indices.tolist() == [0, 1, 2, 3, 4]
    assert unique_labels.tolist() == [10, 11, 12, 13, 14]


def test_failed_write_keeps_the_old_submission(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    path.write_text("ImageId,Label\n1,3\n")

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        write_submission(path, torch.arange(3), torch.tensor([1, 2, 3]))
    assert path.read_text() == "ImageId,Label\n1,3\n"
    assert list(tmp_path.iterdir()) == [path]


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


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """mkstemp's temporary file is owner-only; the renamed result must not stay so."""
    with atomic_path(tmp_path / "submission.csv") as tmp:
        tmp.write_text("ImageId,Label\n")
    assert (tmp_path / "submission.csv").stat().st_mode & 0o777 == 0o666 & ~_UMASK
