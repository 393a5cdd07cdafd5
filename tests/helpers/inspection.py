"""The tiny runs the inspection tests read: 210 rows, batches of 8, 21 validation images."""

from __future__ import annotations

from pathlib import Path

from digit_recognizer.data.csv import write_digits_csv

from helpers.cli import tiny_run_args
from helpers.data import random_digits


VAL_SIZE = 21  # 10% of 210 rows, stratified: 3 of class 0, 2 of every other; odd, so DDP shards differ


def write_train_csv(folder: Path, rows: int = 210) -> Path:
    folder.mkdir(parents=True)
    images, labels = random_digits(rows)
    write_digits_csv(folder / "train.csv", images, labels)
    return folder


def run_args(tmp: Path, *extra: str) -> list[str]:
    return tiny_run_args(tmp / "data", "--data.cache_dir", str(tmp / "cache"), "--data.batch_size", "8", *extra)
