"""Fetch the competition CSVs when the data folder has none.

First the Kaggle API (the real competition files; needs the `kaggle` package and the user's
credentials), then the public MNIST files through torchvision, written in the same CSV layout.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

from digit_recognizer.constants import TEST_FILE, TRAIN_FILE
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.errors import DataError

log = logging.getLogger(__name__)

COMPETITION = "digit-recognizer"
COMPETITION_URL = "https://www.kaggle.com/competitions/digit-recognizer/data"
MNIST_TEST_LABELLED_FILE = "test_labelled.csv"


def fetch_competition_data(data_dir: Path) -> str:
    """Put train.csv and test.csv into `data_dir`; returns where they came from."""
    data_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for name, fetch in (("Kaggle API", _from_kaggle), ("MNIST via torchvision", _from_mnist)):
        try:
            fetch(data_dir)
        except Exception as exc:  # noqa: BLE001 - every failure is reported together below
            failures.append(f"{name}: {_first_line(exc)}")
            continue
        log.info("fetched the data into %s from %s", data_dir, name)
        return name
    raise DataError(
        f"{data_dir}: no {TRAIN_FILE} and {TEST_FILE}, and fetching them failed ({'; '.join(failures)}). "
        f"Download them from {COMPETITION_URL} into {data_dir}, or point --data.data_dir at them."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _from_kaggle(data_dir: Path) -> None:
    try:
        # Imported here: the package authenticates at import and exits when no credentials exist.
        from kaggle import api
    except SystemExit as exc:
        raise RuntimeError("no Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY)") from exc
    except ImportError as exc:
        raise RuntimeError("the 'kaggle' package is not installed (pip install kaggle)") from exc
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        api.competition_download_files(COMPETITION, path=tmp, quiet=False)
        archives = list(Path(tmp).glob("*.zip"))
        if not archives:
            raise RuntimeError("the Kaggle API returned no zip archive")
        with zipfile.ZipFile(archives[0]) as archive:
            for name in (TRAIN_FILE, TEST_FILE):
                archive.extract(name, tmp)
        for name in (TRAIN_FILE, TEST_FILE):
            os.replace(Path(tmp) / name, data_dir / name)


def _from_mnist(data_dir: Path) -> None:
    """MNIST's 60,000 training and 10,000 test images in the Kaggle layout.

    test.csv holds pixels only, like Kaggle's; the same rows with their labels go to
    test_labelled.csv, which `test --data.test_csv` can score.
    """
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        train = MNIST(tmp, train=True, download=True)
        test = MNIST(tmp, train=False, download=True)
        for name, images, labels in (
            (TRAIN_FILE, train.data, train.targets),
            (MNIST_TEST_LABELLED_FILE, test.data, test.targets),
            (TEST_FILE, test.data, None),
        ):
            write_digits_csv(data_dir / name, images, labels)
