"""The parsed-CSV cache: hit, rebuilt when stale or damaged, skipped with a warning on a full disk."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from digit_recognizer.data import cache as cache_module
from digit_recognizer.data.cache import load_digits
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.errors import DataError

from helpers.data import random_digits
from helpers.disk_full import half_written_then_disk_full
from helpers.errors import raises_one_line


# -- cache --------------------------------------------------------------------------------------

@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    write_digits_csv(path, *random_digits(40))
    return path


def count_parses(monkeypatch) -> list:
    calls = []
    real = cache_module.read_digits_csv
    monkeypatch.setattr(cache_module, "read_digits_csv", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_cache_hit_skips_parsing(csv_file, tmp_path, monkeypatch):
    calls = count_parses(monkeypatch)
    first = load_digits(csv_file, labelled=True, cache_dir=tmp_path / "cache")
    second = load_digits(csv_file, labelled=True, cache_dir=tmp_path / "cache")
    assert len(calls) == 1
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_cache_rebuilt_when_csv_changes(csv_file, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    images, labels = random_digits(40, seed=7)
    write_digits_csv(csv_file, images, labels)
    stat = csv_file.stat()  # same size, so only the timestamp tells: make sure it moved
    os.utime(csv_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = count_parses(monkeypatch)
    reloaded = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and torch.equal(reloaded.images, images)


def test_cache_rebuilt_when_csv_is_replaced_keeping_size_and_mtime(csv_file, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    before = csv_file.stat()
    header, first, rest = csv_file.read_text().split("\n", 2)
    csv_file.write_text("\n".join([header, "7" + first[1:], rest]))  # another label, same size
    os.utime(csv_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` leave it
    assert csv_file.stat().st_size == before.st_size and first[0] != "7"
    calls = count_parses(monkeypatch)
    reloaded = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and reloaded.labels[0] == 7


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tampered"])
def test_corrupt_cache_is_rebuilt(csv_file, tmp_path, monkeypatch, damage):
    cache_dir = tmp_path / "cache"
    expected = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    (entry,) = cache_dir.iterdir()
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "garbage":
        entry.write_bytes(b"not a torch file")
    else:  # a valid file whose tensors no longer match their checksum
        blob = torch.load(entry, weights_only=True)
        blob["images"][0, 0, 0] ^= 1
        torch.save(blob, entry)
    calls = count_parses(monkeypatch)
    digits = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and torch.equal(digits.images, expected.images)
    calls.clear()
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert not calls, "the rebuilt cache should be used again"


def test_cache_keeps_labelled_and_unlabelled_apart(tmp_path):
    path = tmp_path / "test.csv"
    write_digits_csv(path, random_digits(5)[0], None)
    assert load_digits(path, labelled=False, cache_dir=tmp_path / "c").labels is None
    with raises_one_line(DataError, match="label"):
        load_digits(path, labelled=True, cache_dir=tmp_path / "c")


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
