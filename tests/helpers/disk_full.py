"""Writes that fail as on a full disk (ENOSPC), and the one line they must give."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


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
