"""A full disk (ENOSPC) while writing a checkpoint, the parsed-CSV cache or the submission.

Checkpoint and submission: one UserError line naming the file and "no space left on device", the
previous file intact (a previous last.ckpt still loads, so the run can resume) and no temporary
file left. The cache: a warning, and the data still loads. First with the write monkeypatched to
fail, then on a real full filesystem: a 256 KiB tmpfs mounted in a private mount namespace
(`unshare`), skipped where mounting is not permitted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from digit_recognizer.callbacks.submission import write_submission
from digit_recognizer.checkpoints import AtomicCheckpointIO, check_checkpoint
from digit_recognizer.data.cache import load_digits
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.errors import UserError
from digit_recognizer.module import DigitClassifier

from conftest import REPO, random_digits

SUBMISSION = "ImageId,Label\n1,3\n"


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_written_then_disk_full(obj, file, *args, **kwargs):
    """torch.save that gets part of the checkpoint out before the disk fills up."""
    file.write(b"PK\x03\x04 half a checkpoint")
    file.flush()
    disk_full()


def assert_one_line(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "no space left on device" in message, message
    assert "\n" not in message


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return DigitClassifier()


@pytest.mark.parametrize("save", [disk_full, half_written_then_disk_full])
def test_checkpoint_on_a_full_disk_keeps_the_last_one_resumable(tmp_path, monkeypatch, model, save):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 0, "global_step": 3, "state_dict": model.state_dict()}, path)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(UserError) as error:
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


def torch_on_a_full_disk(obj, file, *args, **kwargs):
    """What torch.save raises when the disk fills up: not an OSError."""
    file.write(b"PK\x03\x04 half a cache entry")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 768 vs 662")


@pytest.mark.parametrize("save, reason", [(half_written_then_disk_full, "no space left on device"),
                                          (torch_on_a_full_disk, "unexpected pos")])
def test_cache_on_a_full_disk_is_a_warning_and_the_data_still_loads(tmp_path, monkeypatch, caplog, save, reason):
    images, labels = random_digits(20)
    write_digits_csv(tmp_path / "train.csv", images, labels)
    monkeypatch.setattr(torch, "save", save)
    with caplog.at_level(logging.WARNING, logger="digit_recognizer.data.cache"):
        digits = load_digits(tmp_path / "train.csv", labelled=True, cache_dir=tmp_path / "cache")
    assert torch.equal(digits.images, images) and torch.equal(digits.labels, labels)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and reason in warnings[0].getMessage()
    assert "continuing without it" in warnings[0].getMessage()
    assert not list((tmp_path / "cache").iterdir()), "no partial cache file may be left behind"
