"""AtomicCheckpointIO: a checkpoint is written whole or not at all; a save that dies or fills the
disk keeps the previous file, loadable, and no temporary file."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from digit_recognizer.checkpoints import AtomicCheckpointIO, check_checkpoint
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.errors import UserError

from helpers.disk_full import assert_one_line, disk_full, half_written_then_disk_full
from helpers.errors import raises_one_line


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_dies(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)

    def dying_save(obj, file, *args, **kwargs):  # AtomicCheckpointIO passes an open file
        file.write(b"half a checkpo")
        file.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file may be left behind"


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return DigitClassifier()


@pytest.mark.parametrize("save", [disk_full, half_written_then_disk_full])
def test_checkpoint_on_a_full_disk_keeps_the_last_one_resumable(tmp_path, monkeypatch, model, save):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 0, "global_step": 3, "state_dict": model.state_dict()}, path)
    monkeypatch.setattr(torch, "save", save)
    with raises_one_line(UserError) as error:
        AtomicCheckpointIO().save_checkpoint({"epoch": 1, "state_dict": model.state_dict()}, path)
    monkeypatch.undo()
    assert_one_line(error, path)
    check_checkpoint(path, model)  # still a whole checkpoint of this model: --ckpt_path last resumes from it
    assert torch.load(path, weights_only=True)["epoch"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file may be left behind"


def test_a_checkpoint_error_that_is_not_a_full_disk_is_not_disguised(tmp_path, monkeypatch):
    def permission_denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(torch, "save", permission_denied)
    with pytest.raises(PermissionError):
        AtomicCheckpointIO().save_checkpoint({"epoch": 0}, tmp_path / "last.ckpt")
