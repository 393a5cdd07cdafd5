"""Reading and writing Kaggle's CSVs: round trips, encodings, and one line for each kind of bad file."""

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from digit_recognizer.constants import PIXEL_COLUMNS
from digit_recognizer.data.csv import read_digits_csv, write_digits_csv
from digit_recognizer.errors import DataError

from helpers.data import random_digits
from helpers.errors import raises_one_line


HEADER = "label," + ",".join(PIXEL_COLUMNS)
TEST_HEADER = ",".join(PIXEL_COLUMNS)


def row(label: int | str | None = 3, pixel: str = "0", at: int = 0) -> str:
    """One CSV line: all pixels 0 except `pixel` at column `at`."""
    cells = ["0"] * 784
    cells[at] = pixel
    return ",".join(([str(label)] if label is not None else []) + cells)


@contextmanager
def one_line_error(path: Path, pattern: str) -> Iterator[None]:
    """raises_one_line(DataError, match=pattern), and the message is one line that starts with the file."""
    with raises_one_line(DataError, match=pattern) as error:
        yield
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value), str(error.value)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz"])
def test_round_trip(tmp_path, name):
    images, labels = random_digits(30)
    write_digits_csv(tmp_path / name, images, labels)
    digits = read_digits_csv(tmp_path / name, labelled=True)
    assert digits.images.dtype == torch.uint8 and digits.images.shape == (30, 28, 28)
    assert torch.equal(digits.images, images) and torch.equal(digits.labels, labels)


def test_unlabelled_round_trip(tmp_path):
    images, _ = random_digits(5)
    write_digits_csv(tmp_path / "test.csv", images, None)
    digits = read_digits_csv(tmp_path / "test.csv", labelled=False)
    assert digits.labels is None and torch.equal(digits.images, images)


def test_crlf_and_bom_are_accepted(tmp_path):
    text = "\ufeff" + "\r\n".join([HEADER, row(7, "255", 5), row(1)]) + "\r\n"
    digits = read_digits_csv(write(tmp_path / "train.csv", text), labelled=True)
    assert digits.labels.tolist() == [7, 1]
    assert digits.images[0, 0, 5] == 255


BAD_TRAIN = {
    "empty file": ("", "the file is empty"),
    "header only": (HEADER + "\n", "has a header but no data rows"),
    "no label column": (TEST_HEADER + "\n" + row(None) + "\n", "line 1: no 'label' column"),
    "missing column": (HEADER.rsplit(",", 1)[0] + "\n" + row()[:-2] + "\n", "line 1: missing column 'pixel783'"),
    "extra column": (HEADER + ",extra\n" + row() + ",0\n", "line 1: unexpected column 'extra'"),
    "wrong header name": (HEADER.replace("pixel10,", "pixel_10,") + "\n" + row() + "\n", "missing column 'pixel10'"),
    "repeated column": (HEADER + ",pixel5\n" + row() + ",0\n", "line 1: column 'pixel5' appears 2 times"),
    "unnamed column": (HEADER + ",\n" + row() + ",0\n", "line 1: unexpected column '' (column 786; 1 unexpected)"),
    "blank first line": ("\n" + HEADER + "\n" + row() + "\n", "line 1: blank line; the header (label,pixel0,"),
    "swapped columns": (HEADER.replace("pixel1,pixel2", "pixel2,pixel1") + "\n" + row() + "\n",
                        "line 1: column 3 is 'pixel2', expected 'pixel1'"),
    "too many fields": (HEADER + "\n" + row() + "\n" + row() + ",0\n", "line 3: 786 fields, the header has 785"),
    "too few fields": (HEADER + "\n" + row() + "\n" + row()[:-2] + "\n", "line 3, column 'pixel783': empty or missing cell"),
    "first row short": (HEADER + "\n" + row()[:-2] + "\n" + row() + "\n", "line 2, column 'pixel783': empty or missing cell"),
    "trailing comma on line 2": (HEADER + "\n" + row() + ",\n" + row() + ",\n", "line 2: 786 fields, the header has 785"),
    "first row long": (HEADER + "\n" + row() + ",0,0\n" + row() + "\n", "line 2: 787 fields, the header has 785"),
    "CR line ends, line 2 starts with an empty cell": (HEADER + "\r" + ",0" * 785 + "\r",
                                                      "line 2: 786 fields, the header has 785"),
    "non-numeric pixel": (HEADER + "\n" + row() + "\n" + row(pixel="abc", at=12) + "\n",
                          "line 3, column 'pixel12': 'abc' is not a number"),
    "blank cell": (HEADER + "\n" + row(pixel="", at=40) + "\n", "line 2, column 'pixel40': empty or missing cell"),
    "NaN cell": (HEADER + "\n" + row() + "\n" + row(pixel="NaN", at=7) + "\n", "line 3, column 'pixel7': empty or missing cell"),
    "fractional pixel": (HEADER + "\n" + row(pixel="12.5", at=3) + "\n", "line 2, column 'pixel3': 12.5 is not a whole number"),
    "pixel above 255": (HEADER + "\n" + row() + "\n" + row(pixel="256", at=100) + "\n",
                        "line 3, column 'pixel100': 256 is outside 0..255"),
    "negative pixel": (HEADER + "\n" + row(pixel="-1", at=0) + "\n", "line 2, column 'pixel0': -1 is outside 0..255"),
    "True and False pixels": (HEADER + "\n" + row(pixel="True") + "\n" + row(pixel="False") + "\n",
                              "line 2, column 'pixel0': True is not a number"),
    "infinite pixel": (HEADER + "\n" + row(pixel="inf", at=9) + "\n", "line 2, column 'pixel9': inf is not a number"),
    "huge pixel": (HEADER + "\n" + row() + "\n" + row(pixel="9223372036854775808", at=1) + "\n",
                   "line 3, column 'pixel1': 9223372036854775808 is outside 0..255"),
    "uint64 label": (HEADER + "\n" + row(label="18446744073709551615") + "\n",
                     "line 2, column 'label': 18446744073709551615 is outside 0..9"),
    "label above 9": (HEADER + "\n" + row() + "\n" + row(label=10) + "\n", "line 3, column 'label': 10 is outside 0..9"),
    "non-numeric label": (HEADER + "\n" + row(label="seven") + "\n", "line 2, column 'label': 'seven' is not a number"),
    "unclosed quote on line 2": (HEADER + "\n" + row(pixel='"7') + "\n" + row() + "\n",
                                 "line 2: a quoted cell starts here and its closing quote is missing"),
    "unclosed quote": (HEADER + "\n" + row() + "\n" + row(label='"3') + "\n",
                       "line 3: a quoted cell starts here and its closing quote is missing"),
    "unclosed quote in the header": ('"' + HEADER + "\n" + row() + "\n",
                                     "line 1: a quoted cell starts here and its closing quote is missing"),
    "bad cell after a quoted line break": (HEADER + "\n" + row(pixel='"7\r\n"') + "\n" + row(pixel="x", at=4) + "\n",
                                           "line 4, column 'pixel4': 'x' is not a number"),
    "long row after a quoted line break": (HEADER + "\n" + row(label='"1\n"') + "\n" + row() + ",0\n",
                                           "line 4: 786 fields, the header has 785"),
    "blank line": (HEADER + "\n" + row() + "\n\n" + row() + "\n", "line 3: blank line"),
    "blank line after the header": (HEADER + "\r\n\r\n" + row() + "\r\n", "line 2: blank line"),
    "blank line after a CR-ended header": (HEADER + "\r\r\n" + row() + "\n", "line 2: blank line"),
}


def test_missing_file(tmp_path):
    with one_line_error(tmp_path / "train.csv", "train.csv: file not found"):
        read_digits_csv(tmp_path / "train.csv", labelled=True)


def test_test_csv_with_a_label_column_is_refused(tmp_path):
    path = write(tmp_path / "test.csv", HEADER + "\n" + row() + "\n")
    with one_line_error(path, "line 1: has a 'label' column; a test file holds pixel columns only"):
        read_digits_csv(path, labelled=False)


def test_truncated_gzip(tmp_path):
    images, labels = random_digits(50)
    write_digits_csv(tmp_path / "full.csv.gz", images, labels)
    data = (tmp_path / "full.csv.gz").read_bytes()
    path = write(tmp_path / "train.csv.gz", data[: len(data) // 2])
    with one_line_error(path, r"train.csv.gz: truncated or corrupt compressed file"):
        read_digits_csv(path, labelled=True)


def test_not_gzip_at_all(tmp_path):
    path = write(tmp_path / "train.csv.gz", b"this is not gzip data at all")
    with one_line_error(path, r"train.csv.gz: "):
        read_digits_csv(path, labelled=True)


def test_gzip_of_non_utf8(tmp_path):
    path = write(tmp_path / "train.csv.gz", gzip.compress(b"\xff\xfe\x00label"))
    with one_line_error(path, r"train.csv.gz: not a UTF-8 text CSV"):
        read_digits_csv(path, labelled=True)


BAD_TEST = {
    "CR line ends, line 2 starts with an empty cell": (TEST_HEADER + "\r" + ",0" * 784 + "\r",
                                                      "line 2: 785 fields, the header has 784"),
    "header only": (TEST_HEADER + "\r\n", "has a header but no data rows"),
    "missing column": (TEST_HEADER.rsplit(",", 1)[0] + "\n" + row(None)[:-2] + "\n", "line 1: missing column 'pixel783'"),
    "blank cell": (TEST_HEADER + "\n" + row(None) + "\n" + row(None, pixel="", at=9) + "\n",
                   "line 3, column 'pixel9': empty or missing cell"),
    "fractional pixel": (TEST_HEADER + "\n" + row(None, pixel="0.5", at=2) + "\n", "line 2, column 'pixel2': 0.5 is not a whole number"),
    "pixel above 255": (TEST_HEADER + "\n" + row(None, pixel="300", at=783) + "\n", "line 2, column 'pixel783': 300 is outside 0..255"),
}


@pytest.mark.parametrize("labelled, case", [(True, case) for case in sorted(BAD_TRAIN)]
                         + [(False, case) for case in sorted(BAD_TEST)])
def test_bad_csv_names_file_line_and_column(tmp_path, labelled, case):
    text, message = (BAD_TRAIN if labelled else BAD_TEST)[case]
    path = write(tmp_path / ("train.csv" if labelled else "test.csv"), text)
    with raises_one_line(DataError) as error:
        read_digits_csv(path, labelled=labelled)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_fractional_label(tmp_path):
    path = write(tmp_path / "train.csv", HEADER + "\n" + row(label="3.5") + "\n")
    with one_line_error(path, "line 2, column 'label': 3.5 is not a whole number"):
        read_digits_csv(path, labelled=True)


def test_gzipped_crlf_bom_test_csv_is_accepted(tmp_path):
    text = "\ufeff" + "\r\n".join([TEST_HEADER, row(None, "17", 0), row(None)]) + "\r\n"
    digits = read_digits_csv(write(tmp_path / "test.csv.gz", gzip.compress(text.encode())), labelled=False)
    assert digits.images.shape == (2, 28, 28) and digits.images[0, 0, 0] == 17
