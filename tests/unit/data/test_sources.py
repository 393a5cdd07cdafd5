"""Where the CSVs come from: the folder, Kaggle's zip, the Kaggle API, MNIST only by name."""

from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from digit_recognizer.data import KaggleDigitsDataModule, sources
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.errors import DataError

from helpers.data import random_digits
from helpers.errors import raises_one_line


def kaggle_zip(path: Path) -> Path:
    """A zip laid out as Kaggle's digit-recognizer.zip: train, test and the sample submission."""
    folder = path.parent / "zip-contents"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(40))
    write_digits_csv(folder / "test.csv", random_digits(12, seed=3)[0], None)
    pd.DataFrame({"ImageId": [1], "Label": [0]}).to_csv(folder / "sample_submission.csv", index=False)
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            archive.write(folder / name, name)
    return path


def datamodule(data_dir: Path | None, **settings) -> KaggleDigitsDataModule:
    return KaggleDigitsDataModule(data_dir=str(data_dir) if data_dir else None, batch_size=8, **settings)


def test_kaggles_zip_in_the_data_folder_is_used(tmp_path, no_credentials):
    data = tmp_path / "data"
    data.mkdir()
    kaggle_zip(data / sources.KAGGLE_ZIP)
    dm = datamodule(data)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("predict")
    assert len(dm.train_set) + len(dm.val_set) == 40 and len(dm.predict_set) == 12


def test_a_zip_that_is_not_the_competitions_is_one_line(tmp_path, no_credentials):
    data = tmp_path / "data"
    data.mkdir()
    (data / sources.KAGGLE_ZIP).write_bytes(b"PK\x03\x04 not really")
    with raises_one_line(DataError, match=r"digit-recognizer.zip: truncated or not a zip file") as error:
        datamodule(data).prepare_data()
    assert "\n" not in str(error.value)


def test_missing_data_without_credentials_names_the_kaggle_command(tmp_path, no_credentials):
    data = tmp_path / "empty"
    data.mkdir()
    with raises_one_line(DataError) as error:
        datamodule(data).prepare_data()
    message = str(error.value)
    assert f"kaggle competitions download -c digit-recognizer -p {data}" in message and "\n" not in message
    assert "no Kaggle credentials" in message or "'kaggle' package is not installed" in message
    assert list(data.iterdir()) == [], "nothing downloaded, nothing written"


def test_missing_data_with_download_off_says_so(tmp_path, no_credentials):
    data = tmp_path / "empty"
    data.mkdir()
    with raises_one_line(DataError, match="downloading is off"):
        datamodule(data, download=False).prepare_data()


def test_a_named_folder_that_does_not_exist_is_an_error_not_another_folder(tmp_path, no_credentials, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_digits_csv(tmp_path / "data" / "train.csv", *random_digits(20))  # ./data exists and has files
    with raises_one_line(DataError, match=r"typo: no such data folder"):
        datamodule(Path("typo")).prepare_data()
    monkeypatch.setenv(sources.DATA_DIR_VARIABLE, str(tmp_path / "gone"))
    with raises_one_line(DataError, match=r"gone: no such data folder"):
        datamodule(None).prepare_data()


def test_the_environment_variable_names_the_data_folder(tmp_path, tiny_data, no_credentials, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(sources.DATA_DIR_VARIABLE, str(tiny_data))
    dm = datamodule(None)
    assert dm.csv_path("train.csv") == tiny_data / "train.csv"
    monkeypatch.delenv(sources.DATA_DIR_VARIABLE)
    assert sources.resolve_data_dir(None) == (Path("data"), False), "unnamed: ./data, which a download may create"


@pytest.fixture
def kaggle_notebook(tmp_path, monkeypatch, no_credentials) -> Path:
    """A Kaggle notebook's /kaggle/input/digit-recognizer (at a tmp folder), with the competition's
    files; the test runs in an empty folder of its own (no ./data)."""
    folder = tmp_path / "kaggle" / "input" / "digit-recognizer"
    folder.mkdir(parents=True)
    write_digits_csv(folder / "train.csv", *random_digits(20))
    write_digits_csv(folder / "test.csv", random_digits(5, seed=1)[0], None)
    monkeypatch.setattr(sources, "KAGGLE_INPUT_DIR", folder)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return folder


def test_on_a_kaggle_notebook_its_input_folder_is_found(kaggle_notebook):
    assert sources.resolve_data_dir(None) == (kaggle_notebook, False)
    assert datamodule(None).csv_path("train.csv") == kaggle_notebook / "train.csv"
    (Path("data")).mkdir()  # an empty ./data does not hide it either
    assert sources.resolve_data_dir(None) == (kaggle_notebook, False)


@pytest.mark.parametrize("earlier", ["--data.data_dir", "$DIGIT_RECOGNIZER_DATA", "./data", "./data's zip"])
def test_the_kaggle_input_folder_comes_last(kaggle_notebook, tmp_path, monkeypatch, earlier):
    mine = Path("data") if earlier.startswith("./data") else tmp_path / "mine"
    mine.mkdir()
    if earlier == "./data's zip":
        kaggle_zip(mine / sources.KAGGLE_ZIP)
    else:
        write_digits_csv(mine / "train.csv", *random_digits(20))
    if earlier == "$DIGIT_RECOGNIZER_DATA":
        monkeypatch.setenv(sources.DATA_DIR_VARIABLE, str(mine))
    named = str(mine) if earlier == "--data.data_dir" else None
    assert sources.resolve_data_dir(named) == (mine, earlier in ("--data.data_dir", "$DIGIT_RECOGNIZER_DATA"))
    assert datamodule(Path(named) if named else None).csv_path("train.csv") == mine / "train.csv"


def test_a_named_folder_without_files_is_not_replaced_by_the_kaggle_input_folder(kaggle_notebook, tmp_path,
                                                                                 monkeypatch):
    (tmp_path / "empty").mkdir()
    assert sources.resolve_data_dir(str(tmp_path / "empty")) == (tmp_path / "empty", True)
    monkeypatch.setenv(sources.DATA_DIR_VARIABLE, str(tmp_path / "empty"))
    assert sources.resolve_data_dir(None) == (tmp_path / "empty", True)


def test_without_a_kaggle_input_folder_the_lookup_ends_at_data(tmp_path, monkeypatch, no_credentials):
    monkeypatch.setattr(sources, "KAGGLE_INPUT_DIR", tmp_path / "absent")
    monkeypatch.chdir(tmp_path)
    assert sources.resolve_data_dir(None) == (Path("data"), False)
    (tmp_path / "absent").mkdir()  # there, but without the competition's files
    assert sources.resolve_data_dir(None) == (Path("data"), False)


def test_the_kaggle_api_downloads_the_zip_when_credentials_exist(tmp_path, monkeypatch, no_credentials):
    downloads = []

    def competition_download_files(competition, path, quiet):
        downloads.append(competition)
        kaggle_zip(Path(path) / "digit-recognizer.zip")

    monkeypatch.setitem(sys.modules, "kaggle", types.SimpleNamespace(
        api=types.SimpleNamespace(competition_download_files=competition_download_files)))
    monkeypatch.setattr(sources, "_kaggle_unavailable", lambda: None)
    data = tmp_path / "data"
    data.mkdir()
    dm = datamodule(data)
    dm.prepare_data()
    dm.setup("fit")
    assert downloads == ["digit-recognizer"] and len(dm.train_set) + len(dm.val_set) == 40
    assert (data / "train.csv").is_file() and (data / "test.csv").is_file()


def test_mnist_only_by_name_and_in_its_own_folder(tmp_path, monkeypatch, tiny_data):
    class FakeMNIST:
        def __init__(self, root, train, download):
            self.data, self.targets = random_digits(30 if train else 10, seed=int(train))

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    kaggle = datamodule(tiny_data)
    kaggle.setup("fit")
    assert len(kaggle.train_set) + len(kaggle.val_set) == 200, "the competition's files, not MNIST"
    mnist = datamodule(tiny_data, source="mnist")
    mnist.prepare_data()
    mnist.setup("fit")
    mnist.setup("predict")
    assert len(mnist.train_set) + len(mnist.val_set) == 30 and len(mnist.predict_set) == 10
    assert sorted(p.name for p in (tiny_data / "mnist").iterdir()) == ["test.csv", "test_labelled.csv", "train.csv"]
