"""Where the competition CSVs come from: a local folder, Kaggle's zip, the Kaggle API, or MNIST by name.

`resolve_data_dir` picks the folder: --data.data_dir, $DIGIT_RECOGNIZER_DATA, ./data, and on a
Kaggle notebook /kaggle/input/digit-recognizer. `find_competition_files` is the one place that
decides what is used from it. In order: train.csv / test.csv (plain or .gz) in the data folder;
Kaggle's `digit-recognizer.zip` there (its two CSVs are unpacked beside it once); a download of
that zip with the Kaggle API when the `kaggle` package and the user's credentials are present;
otherwise one error line with the kaggle command to run. MNIST is never a silent substitute: it is
used only with `source: mnist`, in a folder of its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from digit_recognizer.constants import TEST_FILE, TRAIN_FILE
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.errors import DataError
from digit_recognizer.files import atomic_path

log = logging.getLogger(__name__)

COMPETITION = "digit-recognizer"
KAGGLE_ZIP = f"{COMPETITION}.zip"
DATA_DIR_VARIABLE = "DIGIT_RECOGNIZER_DATA"
DEFAULT_DATA_DIR = "data"
MNIST_SUBDIR = "mnist"
MNIST_TEST_LABELLED_FILE = "test_labelled.csv"
# Where a Kaggle notebook with the competition added as input finds its files (read-only).
KAGGLE_INPUT_DIR = Path("/kaggle/input") / COMPETITION


def resolve_data_dir(data_dir: str | None) -> tuple[Path, bool]:
    """(folder, chosen): `data_dir`, else $DIGIT_RECOGNIZER_DATA, else ./data, else, when ./data
    has no competition files and a Kaggle notebook's KAGGLE_INPUT_DIR has them, that folder.

    `chosen` is True when the user named the folder (argument or variable): a named folder that
    does not exist is an error, never replaced by another one.
    """
    if data_dir:
        return Path(data_dir), True
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]), True
    default = Path(DEFAULT_DATA_DIR)
    if not _has_competition_files(default) and _has_competition_files(KAGGLE_INPUT_DIR):
        return KAGGLE_INPUT_DIR, False
    return default, False


def _has_competition_files(folder: Path) -> bool:
    return _has_csv(folder) or (folder / KAGGLE_ZIP).is_file()


def kaggle_command(folder: Path) -> str:
    return f"kaggle competitions download -c {COMPETITION} -p {folder}"


def existing_csv(path: Path) -> Path | None:
    """The path itself or its .gz twin, whichever exists."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_competition_files(folder: Path, chosen: bool, download: bool) -> Path:
    """The folder holding train.csv and/or test.csv, unpacking or downloading Kaggle's zip if needed."""
    if chosen and not folder.is_dir():
        raise DataError(f"{folder}: no such data folder (from --data.data_dir or ${DATA_DIR_VARIABLE}); "
                        f"create it and run `{kaggle_command(folder)}`, or name the folder that holds the CSVs")
    if _has_csv(folder):
        return folder
    if (folder / KAGGLE_ZIP).is_file():
        unpack_kaggle_zip(folder / KAGGLE_ZIP, folder)
        return folder
    missing = (f"{folder}: no {TRAIN_FILE} or {TEST_FILE} (plain or .gz) and no {KAGGLE_ZIP}; "
               f"download them with `{kaggle_command(folder)}`")
    if not download:
        raise DataError(f"{missing} (downloading is off: --data.download false)")
    reason = _kaggle_unavailable()
    if reason:
        raise DataError(f"{missing} ({reason})")
    folder.mkdir(parents=True, exist_ok=True)
    _download_with_kaggle(folder)
    unpack_kaggle_zip(folder / KAGGLE_ZIP, folder)
    return folder


def _has_csv(folder: Path) -> bool:
    return any(existing_csv(folder / name) for name in (TRAIN_FILE, TEST_FILE))


def unpack_kaggle_zip(archive: Path, folder: Path) -> None:
    """train.csv and test.csv out of Kaggle's zip, each written whole or not at all."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = set(zipped.namelist())
            absent = [name for name in (TRAIN_FILE, TEST_FILE) if name not in names]
            if absent:
                raise DataError(f"{archive}: not the competition's zip (no {absent[0]} inside)")
            for name in (TRAIN_FILE, TEST_FILE):
                with zipped.open(name) as source, atomic_path(folder / name) as tmp, open(tmp, "wb") as target:
                    shutil.copyfileobj(source, target)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive}: truncated or not a zip file ({exc})") from None
    log.info("unpacked %s into %s", archive, folder)


def _kaggle_unavailable() -> str | None:
    """Why the Kaggle API cannot download, or None when it can be tried."""
    try:
        import importlib.util

        if importlib.util.find_spec("kaggle") is None:
            return "the 'kaggle' package is not installed: pip install kaggle"
    except (ImportError, ValueError):
        return "the 'kaggle' package is not installed: pip install kaggle"
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    has_token = (config_dir / "kaggle.json").is_file() or (config_dir / "access_token").is_file()
    has_env = bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or bool(
        os.environ.get("KAGGLE_API_TOKEN"))
    if not (has_token or has_env):
        return f"no Kaggle credentials: put your API token in {config_dir / 'kaggle.json'} or set KAGGLE_USERNAME and KAGGLE_KEY"
    return None


def _download_with_kaggle(folder: Path) -> None:
    try:
        from kaggle import api  # authenticates at import

        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            api.competition_download_files(COMPETITION, path=tmp, quiet=False)
            archives = list(Path(tmp).glob("*.zip"))
            if not archives:
                raise RuntimeError("the Kaggle API returned no zip archive")
            os.replace(archives[0], folder / KAGGLE_ZIP)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the API's failures are many; say which in one line
        text = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        raise DataError(f"{folder}: the Kaggle API download failed ({reason}); run `{kaggle_command(folder)}` "
                        f"yourself (you may first need to accept the competition's rules on kaggle.com)") from None


def mnist_folder(folder: Path) -> Path:
    """MNIST's 60,000 + 10,000 images in the Kaggle layout, in `folder`/mnist (made once).

    test.csv holds pixels only, like Kaggle's; the same rows with labels go to test_labelled.csv,
    which `test --data.test_csv` can score. Kept apart from the competition's files on purpose.
    """
    target = folder / MNIST_SUBDIR
    if all((target / name).is_file() for name in (TRAIN_FILE, TEST_FILE, MNIST_TEST_LABELLED_FILE)):
        return target
    from torchvision.datasets import MNIST

    target.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            train = MNIST(tmp, train=True, download=True)
            test = MNIST(tmp, train=False, download=True)
            for name, images, labels in (
                (TRAIN_FILE, train.data, train.targets),
                (MNIST_TEST_LABELLED_FILE, test.data, test.targets),
                (TEST_FILE, test.data, None),
            ):
                write_digits_csv(target / name, images, labels)
    except (OSError, RuntimeError) as exc:  # offline, a proxy, a full disk
        raise DataError(f"{target}: could not fetch MNIST through torchvision ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    return target
