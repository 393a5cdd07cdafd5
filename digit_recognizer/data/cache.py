"""Parse each CSV once: later runs load its tensors from a cache file in well under a second.

A cache entry is keyed on the CSV's absolute path, size and modification/change times, and carries a
checksum of its tensors: a changed CSV, or a damaged or foreign cache file, is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from digit_recognizer.data.csv import Digits, read_digits_csv
from digit_recognizer.files import atomic_file

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digit_recognizer"


def load_digits(path: str | Path, labelled: bool, cache_dir: str | Path | None = None) -> Digits:
    """The parsed CSV, from the cache when it is current, else parsed and cached."""
    path = Path(path).resolve()
    if not path.is_file():
        return read_digits_csv(path, labelled)  # raises the usual "file not found"
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = cache_dir / f"{path.name}.{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.pt"
    key = _source_key(path, labelled)
    digits = _load_entry(entry, key)
    if digits is None:
        digits = read_digits_csv(path, labelled)
        _save_entry(entry, key, digits)
    return digits


def _source_key(path: Path, labelled: bool) -> dict:
    stat = path.stat()
    return {
        "format": CACHE_FORMAT,
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,  # set by every write; unlike mtime, no copy tool can restore it
        "labelled": labelled,
    }


def _checksum(digits: Digits) -> str:
    digest = hashlib.blake2b(digits.images.numpy().tobytes(), digest_size=16)
    if digits.labels is not None:
        digest.update(digits.labels.numpy().tobytes())
    return digest.hexdigest()


def _load_entry(entry: Path, key: dict) -> Digits | None:
    if not entry.exists():
        return None
    try:
        blob = torch.load(entry, map_location="cpu", weights_only=True)
        if blob["key"] != key:
            log.info("cache %s is stale; rebuilding it", entry)
            return None
        digits = Digits(images=blob["images"], labels=blob["labels"])
        if _checksum(digits) != blob["checksum"]:
            raise ValueError("checksum mismatch")
        return digits
    except Exception as exc:  # a truncated, corrupt or foreign file: rebuild it
        log.warning("cache %s is unreadable (%s); rebuilding it", entry, exc)
        return None


def _save_entry(entry: Path, key: dict, digits: Digits) -> None:
    """Best effort: a read-only or full cache folder only costs the next run a re-parse.

    Any failure is a warning: on a full disk torch.save raises a RuntimeError ("unexpected pos"),
    not an OSError; atomic_file names that case (a UserError saying "no space left on device").
    """
    blob = {"key": key, "images": digits.images, "labels": digits.labels, "checksum": _checksum(digits)}
    try:
        with atomic_file(entry) as file:
            torch.save(blob, file)
    except Exception as exc:
        log.warning("cannot write cache %s (%s); continuing without it", entry, exc)
