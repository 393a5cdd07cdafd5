"""Writing files so that a crash, a kill or a full disk never leaves a half-written one behind."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from digit_recognizer.errors import UserError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _read_umask() -> int:
    """The process umask (read once, at import, as os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    Readers see the old file or the complete new one, never a partial one; on an exception the
    temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; a new file normally is not
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def disk_full_is_a_user_error(path: str | Path) -> Iterator[None]:
    """Turn a full disk (or quota) while writing `path` into one UserError line naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise _disk_full(path, exc) from None


class _RememberingFile(io.FileIO):
    """A file that keeps the OSError of a failed write: torch.save replaces it by a RuntimeError
    ("unexpected pos ...") that does not say the disk is full."""

    error: OSError | None = None

    def write(self, data) -> int:  # type: ignore[override]
        try:
            return super().write(data)
        except OSError as exc:
            self.error = exc
            raise


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """atomic_path as an open binary file; a full disk (or quota) is one UserError line naming `path`.

    On any failure the temporary file is removed and the previous `path`, if any, is untouched.
    """
    raw: _RememberingFile | None = None
    try:
        with atomic_path(path) as tmp:
            raw = _RememberingFile(tmp, "wb")
            with io.BufferedWriter(raw) as file:
                yield file
    except Exception as exc:
        cause = raw.error if raw is not None and raw.error is not None else exc
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
            raise _disk_full(path, cause) from None
        raise


def _disk_full(path: str | Path, exc: OSError) -> UserError:
    reason = os.strerror(exc.errno)
    return UserError(f"{path}: not written: {reason[0].lower()}{reason[1:]} (any previous version is kept)")
