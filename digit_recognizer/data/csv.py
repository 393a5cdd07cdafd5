"""Read and validate the Kaggle CSVs into uint8 tensors.

Every problem is raised as a `DataError` whose message names the file, the line (as a text editor
counts it: the header is line 1) and the column, so a user can open the file and fix it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from digit_recognizer.constants import IMAGE_SIZE, LABEL_COLUMN, NUM_CLASSES, NUM_PIXELS, PIXEL_COLUMNS, PIXEL_MAX
from digit_recognizer.errors import DataError
from digit_recognizer.files import atomic_path

_FIRST_DATA_LINE = 2  # line 1 is the header
_TOKENIZER_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class Digits:
    """Images as uint8 (N, 28, 28) and, for labelled files, labels as int64 (N,)."""

    images: Tensor
    labels: Tensor | None

    def __len__(self) -> int:
        return len(self.images)


def read_digits_csv(path: str | Path, labelled: bool) -> Digits:
    """Parse a Kaggle CSV (plain or .gz, CRLF or BOM accepted) and check every cell."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    expected = ([LABEL_COLUMN] if labelled else []) + list(PIXEL_COLUMNS)
    header = _read_header(path)
    _check_header(path, header, expected, labelled)
    frame = _read_rows(path, len(expected))
    values = _integer_values(path, frame, expected)
    if labelled:
        _check_range(path, frame.iloc[:, :1], values[:, :1], expected[:1], NUM_CLASSES - 1)
        _check_range(path, frame.iloc[:, 1:], values[:, 1:], expected[1:], PIXEL_MAX)
        labels = torch.from_numpy(values[:, 0].astype(np.int64))
        pixels = values[:, 1:]
    else:
        _check_range(path, frame, values, expected, PIXEL_MAX)
        labels, pixels = None, values
    images = torch.from_numpy(pixels.astype(np.uint8)).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return Digits(images=images, labels=labels)


def write_digits_csv(path: Path, images: Tensor, labels: Tensor | None) -> None:
    """Write uint8 images (N, 28, 28) and optional labels as a Kaggle CSV, atomically."""
    pixels = pd.DataFrame(images.reshape(-1, NUM_PIXELS).numpy().astype(np.uint8), columns=list(PIXEL_COLUMNS))
    if labels is not None:
        pixels.insert(0, LABEL_COLUMN, labels.numpy().astype(np.int64))
    with atomic_path(path) as tmp:
        pixels.to_csv(tmp, index=False, compression="gzip" if path.suffix == ".gz" else None)


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """pandas.read_csv with decompression and encoding failures turned into DataErrors."""
    try:
        return pd.read_csv(path, encoding="utf-8-sig", **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt compressed file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text CSV (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:  # gzip.BadGzipFile and friends
        raise DataError(f"{path}: cannot read the file ({exc})") from None


def _read_header(path: Path) -> list[str]:
    """Line 1's names as written: pandas' own header parsing renames an empty name to 'Unnamed: 3' and
    a repeated one to 'pixel5.1', names the file does not hold."""
    try:
        first = _read_csv(path, header=None, nrows=1, dtype=str, na_filter=False, skip_blank_lines=False)
    except pd.errors.ParserError as exc:  # a quote on line 1 or 2 that is never closed
        raise _parser_error(path, exc, width=None) from None
    except DataError as exc:
        if "the file is empty" in str(exc) and _has_text(path):  # pandas: "no columns" for a blank line 1
            raise DataError(f"{path}: line 1: blank line; the header ({_header_example()}) must come first") from None
        raise
    return [str(name) for name in first.iloc[0]] if len(first) else []


def _has_text(path: Path) -> bool:
    """Whether the (decompressed) .csv or .csv.gz holds anything at all, e.g. a blank line."""
    if path.suffix not in (".csv", ".gz"):
        return False  # another compression pandas infers: say "empty", as pandas does
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
        return bool(file.read(1))


def _header_example() -> str:
    return f"{LABEL_COLUMN},{PIXEL_COLUMNS[0]},...,{PIXEL_COLUMNS[-1]}"


def _check_header(path: Path, header: list[str], expected: list[str], labelled: bool) -> None:
    if header == expected:
        return
    if labelled and LABEL_COLUMN not in header:
        raise DataError(f"{path}: line 1: no '{LABEL_COLUMN}' column; a training file starts with '{LABEL_COLUMN}'")
    if not labelled and LABEL_COLUMN in header:
        raise DataError(
            f"{path}: line 1: has a '{LABEL_COLUMN}' column; a test file holds pixel columns only "
            "(is this the training file?)"
        )
    missing = [name for name in expected if name not in header]
    if missing:
        raise DataError(f"{path}: line 1: missing column '{missing[0]}' ({len(missing)} missing)")
    repeated = next((name for i, name in enumerate(header) if name in header[:i]), None)
    if repeated is not None:
        raise DataError(f"{path}: line 1: column '{repeated}' appears {header.count(repeated)} times")
    extra = [(i, name) for i, name in enumerate(header) if name not in expected]
    if extra:
        position, name = extra[0]
        raise DataError(f"{path}: line 1: unexpected column '{name}' (column {position + 1}; {len(extra)} unexpected)")
    position = next(i for i, (got, want) in enumerate(zip(header, expected)) if got != want)
    raise DataError(f"{path}: line 1: column {position + 1} is '{header[position]}', expected '{expected[position]}'")


def _read_rows(path: Path, width: int) -> pd.DataFrame:
    """The data rows, one per line, at the header's width: a blank or short line has missing cells.

    Parsing line 1 as the header (not skipping it) matters: after a skipped CR-ended line pandas'
    tokenizer drops a leading empty cell of line 2, shifting that row by one column.
    """
    try:
        with warnings.catch_warnings():
            # index_col=False: a longer line 2 must not become an index; pandas would drop its extra cells
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = _read_csv(path, header=0, index_col=False, skip_blank_lines=False, low_memory=False)
        longer = None
    except pd.errors.ParserWarning:
        longer = _line_2_width(path) or width + 1
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, width) from None
    if longer is None:  # index_col=False also drops a trailing empty cell of line 2 without a word
        longer = _line_2_width(path)
    if longer is not None:
        raise DataError(f"{path}: line {_FIRST_DATA_LINE}: {_fields(longer)}, the header has {width}")
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def _line_2_width(path: Path) -> int | None:
    """How many fields line 2 has when it has more than line 1 (the header), else None."""
    try:
        _read_csv(path, header=None, nrows=2, dtype=str, na_filter=False, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        fields = _TOKENIZER_ERROR.search(str(exc))
        if fields and fields[2] == "2":
            return int(fields[3])
    return None


def _parser_error(path: Path, exc: pd.errors.ParserError, width: int | None) -> DataError:
    """pandas' tokenizer error as one line naming the line; `width`: the header's, None while reading it."""
    fields = _TOKENIZER_ERROR.search(str(exc))
    if fields and width is not None:
        _, record, saw = (int(group) for group in fields.groups())  # pandas counts records from 1
        return DataError(f"{path}: line {_line(path, record - 1)}: {_fields(saw)}, the header has {width}")
    quote = _OPEN_QUOTE.search(str(exc))
    if quote:  # pandas counts these records from 0, the header included
        return DataError(f"{path}: line {_line(path, int(quote[1]))}: a quoted cell starts here and its closing "
                         "quote is missing")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{path}: malformed CSV ({reason})")


def _line(path: Path, record: int) -> int:
    """The line, as an editor counts them, on which CSV record `record` starts (0: the header).

    pandas counts records; they are lines unless a quoted cell holds a line break, so only a file
    with a quote in it is parsed again (with the csv module, on the way to an error) to count.
    """
    try:
        if path.suffix not in (".csv", ".gz"):
            return record + 1  # another compression pandas infers: do not guess
        with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8-sig", newline="") as file:
            text = file.read()
        if '"' not in text:
            return record + 1
        reader = csv.reader(io.StringIO(text, newline=""))
        line = 1
        for index, _ in enumerate(reader):
            if index == record:
                return line
            line = reader.line_num + 1
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error):
        pass
    return record + 1


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


def _integer_values(path: Path, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The cells as whole numbers, or a DataError for the first cell that is not one.

    int64 when pandas parsed every column as such (a Kaggle file); float64 otherwise, checked in one
    pass over all cells (a blank line makes every column float). A huge or infinite number stays a
    float here, so the range check reports it as written instead of as a wrapped int64.
    """
    if all(dtype == np.int64 for dtype in frame.dtypes):
        return frame.to_numpy(dtype=np.int64)
    numbers = np.empty(frame.shape, dtype=np.float64)
    numeric = [i for i, dtype in enumerate(frame.dtypes)
               if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)]
    numbers[:, numeric] = frame.iloc[:, numeric].to_numpy(dtype=np.float64)
    for column in sorted(set(range(frame.shape[1])) - set(numeric)):  # text, or True/False
        cells = frame.iloc[:, column]
        if pd.api.types.is_bool_dtype(cells.dtype):
            numbers[:, column] = np.nan
        else:
            numbers[:, column] = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = frame.isna().to_numpy()
    finite = np.isfinite(numbers)
    fractional = np.zeros_like(finite)
    fractional[finite] = numbers[finite] != np.floor(numbers[finite])
    bad = missing | ~finite | fractional
    if not bad.any():
        return numbers
    row, column = (int(i) for i in np.argwhere(bad)[0])  # the first bad cell, row by row
    if missing[row].all():
        raise DataError(f"{path}: line {_line(path, row + 1)}: blank line")
    if missing[row, column]:
        message = "empty or missing cell"
    elif not finite[row, column]:
        cell = frame.iat[row, column]
        message = f"{cell!r} is not a number" if isinstance(cell, str) else f"{cell} is not a number"
    else:
        message = f"{numbers[row, column]:g} is not a whole number"
    raise DataError(f"{path}: line {_line(path, row + 1)}, column '{columns[column]}': {message}")


def _check_range(path: Path, frame: pd.DataFrame, values: np.ndarray, columns: list[str], maximum: int) -> None:
    outside = (values < 0) | (values > maximum)
    if not outside.any():
        return
    row, column = (int(i) for i in np.argwhere(outside)[0])
    raise DataError(
        f"{path}: line {_line(path, row + 1)}, column '{columns[column]}': "
        f"{_number_text(frame, values, row, column)} is outside 0..{maximum}"
    )


def _number_text(frame: pd.DataFrame, values: np.ndarray, row: int, column: int) -> str:
    """The cell's whole number as pandas read it: exact for an integer column (e.g. uint64)."""
    if pd.api.types.is_integer_dtype(frame.dtypes.iloc[column]):
        return str(frame.iat[row, column])
    return str(int(values[row, column]))
