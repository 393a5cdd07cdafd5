"""Tiny Kaggle-layout CSVs written by the tests themselves, and a DataModule over them."""

from __future__ import annotations

from pathlib import Path

import torch

from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.data.csv import write_digits_csv


def random_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images whose brightest quadrant pattern depends on the label (so it is learnable)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES
    images = torch.randint(0, 60, (n, IMAGE_SIZE, IMAGE_SIZE), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 4)
        images[i, row * 7 : row * 7 + 7, col * 7 : col * 7 + 7] = 250
    return images, labels


def write_tiny_data(root: Path) -> Path:
    """root/data with a 200-row train.csv and a 50-row test.csv.gz."""
    folder = root / "data"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(200))
    write_digits_csv(folder / "test.csv.gz", random_digits(50, seed=1)[0], None)
    return folder


def tiny_datamodule(data_dir: Path, tmp_path: Path, **settings) -> KaggleDigitsDataModule:
    return KaggleDigitsDataModule(data_dir=str(data_dir), download=False,
                                  cache_dir=str(tmp_path / "cache"), batch_size=32, **settings)
