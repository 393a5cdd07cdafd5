"""Mutated Kaggle CSVs by the hundred: each loads exactly the right tensors, or fails with one DataError line.

Hypothesis starts from a valid file of a few rows (labelled or not) and damages it: cells (not numbers,
fractions, negatives, > 255, labels > 9, empty, whitespace, quotes, huge numbers), the header (missing,
extra, renamed, reordered or duplicated names), rows (extra or missing fields, blank lines, duplicated
or deleted rows), the encoding (BOM, CRLF or CR line ends, latin-1 bytes, UTF-16, NUL bytes, any
byte), compression (gzip, a corrupt or truncated gzip, a plain file named .gz) and truncation at any
byte. The oracle, `expected_outcome`, re-reads the mutated bytes independently with the standard
library's csv module, so a mutation that keeps the file valid (CRLF, a BOM, a duplicated row, a cut
exactly at a line end) must load the rows it holds, value for value. Any other exception fails the test.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

from digit_recognizer.constants import IMAGE_SIZE, LABEL_COLUMN, NUM_CLASSES, NUM_PIXELS, PIXEL_COLUMNS, PIXEL_MAX
from digit_recognizer.data.csv import read_digits_csv
from digit_recognizer.errors import DataError


EXAMPLES = 1200  # about 45 s of one core; derandomized, so CI runs the same cases every time

# Cells a person or a tool might leave in a CSV; the oracle decides which of them are numbers.
ODD_CELLS = [
    "", " ", "\t", "abc", "x", "1.5", "0.5", "3.0", "3.", ".0", "-0", "-0.0", "-1", "+7", " 7", "7 ", "\t5",
    "256", "300", "1000", "10", "1e2", "1E1", "1e3", "1e-1", "2e0", "inf", "-inf", "nan", "NaN", "NA", "None",
    "null", "True", "False", "0x1F", "1_0", "٣", "½", "00000000000000000000000000007",
    "99999999999999999999", "18446744073709551615", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "255.0000000000000001", '"7"', '"7', '7"', '" 7 "', '"7\n"', '"7,0"', '"1\n2"',
    "7\x00", "\x00",
]
ODD_NAMES = ["", " ", "Label", "LABEL", "label ", " pixel0", "pixel_1", "Pixel2", "pixel784", "pixel-1", "id",
             "Unnamed: 0", '"label"', "pixel0.1", "pixel 5"]
ODD_BYTES = [b"\x00", b"\xe9", b"\xff", b"\xef\xbb\xbf", b",", b"\n", b"\r", b'"', b" ", b"a", b"-", b".", b"9"]


@dataclass
class Outcome:
    """What read_digits_csv may do with a file: load `values`, or raise a DataError naming one of `lines`."""

    may_load: bool
    may_fail: bool
    values: np.ndarray | None = None  # (rows, columns) ints when the file may load
    lines: set[int] | None = None  # the lines an error may name; None: a file-level error names none
    header: list[str] = field(default_factory=list)  # the names on line 1, for header messages
    any_column: set[int] = field(default_factory=set)  # lines holding a record of the wrong width
    cells: dict[tuple[int, str], float | None] = field(default_factory=dict)  # bad cells and their numbers


FILE_ERROR = Outcome(may_load=False, may_fail=True)
INTEGER = re.compile(r"[0-9]+", re.ASCII)
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


class Case(tuple):
    """(file name, bytes, labelled), shown with runs of zero cells folded so a failure stays readable."""

    def __repr__(self) -> str:
        name, data, labelled = self
        folded = re.sub(rb"(?:,0){8,}", lambda run: b"<,0 x%d>" % (len(run[0]) // 2), data)
        folded = re.sub(rb"(?:pixel\d+,){8,}", lambda run: b"<%d pixel names,>" % run[0].count(b","), folded)
        return f"Case({name!r}, labelled={labelled}, {len(data)} bytes: {folded!r})"


def columns_of(labelled: bool) -> list[str]:
    return ([LABEL_COLUMN] if labelled else []) + list(PIXEL_COLUMNS)


def classify(cell: str, maximum: int) -> tuple[str, float | None]:
    """("ok" | "lenient" | "bad", its number): Kaggle writes plain digits; "+7", " 7", "3.0", "1e2" may
    be read as the whole numbers they spell, or refused; anything else must be refused."""
    if INTEGER.fullmatch(cell):
        value = int(cell)
        return ("ok" if value <= maximum else "bad"), value
    stripped = cell.strip(" \t\n\r\v\f")
    if not NUMBER.fullmatch(stripped):
        return "bad", None
    number = float(stripped)
    if not math.isfinite(number):
        return "bad", None
    if number.is_integer() and 0 <= number <= maximum:
        return "lenient", int(number)
    return "bad", number


def expected_outcome(name: str, data: bytes, labelled: bool) -> Outcome:
    """An independent reading of the file's bytes: the standard library's gzip, UTF-8 and csv modules."""
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return FILE_ERROR
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return FILE_ERROR
    lenient = text.startswith("\ufeff")  # a second BOM: pandas' parser drops it, which does no harm
    text = text.removeprefix("\ufeff")
    if not text:
        return FILE_ERROR
    reader = csv.reader(io.StringIO(text, newline=""))
    records = []  # (first line, last line, fields): a quoted cell may hold line breaks
    start = 1
    for fields in reader:
        records.append((start, reader.line_num, fields))
        start = reader.line_num + 1
    columns = columns_of(labelled)
    first, last, header = records[0]
    if header != columns:
        return Outcome(may_load=False, may_fail=True, lines=set(range(first, last + 1)), header=header)
    if len(records) == 1:
        return FILE_ERROR  # a header but no data rows
    outcome = Outcome(may_load=True, may_fail=lenient, lines=set(), header=header)
    values = np.zeros((len(records) - 1, len(columns)), dtype=np.int64)
    for row, (first, last, fields) in enumerate(records[1:]):
        span = set(range(first, last + 1))
        if len(fields) != len(columns):  # a blank line too: no fields at all
            outcome.may_load, outcome.may_fail = False, True
            outcome.lines |= span
            outcome.any_column |= span
            continue
        for column, (cell, name) in enumerate(zip(fields, columns)):
            verdict, number = classify(cell, NUM_CLASSES - 1 if name == LABEL_COLUMN else PIXEL_MAX)
            if verdict == "ok" or verdict == "lenient":
                values[row, column] = number
            if verdict == "ok":
                continue
            outcome.may_fail = True
            outcome.may_load &= verdict == "lenient"
            outcome.lines |= span
            outcome.cells.update({(line, name): number for line in span})
    if outcome.may_load:
        outcome.values = values
    return outcome


def check_outcome(path: Path, labelled: bool, outcome: Outcome) -> str:
    """Assert that read_digits_csv did what `outcome` allows; return what it did, for the statistics."""
    try:
        digits = read_digits_csv(path, labelled)
    except DataError as exc:
        message = str(exc)
        assert outcome.may_fail, f"a valid file was refused: {message}"
        assert message.startswith(f"{path}: ") and "\n" not in message and "\r" not in message, repr(message)
        check_message(message[len(f"{path}: "):], outcome)
        return "refused: " + re.sub(r"'[^']*'|\d+", "_", message[len(f"{path}: "):])[:50]
    assert outcome.may_load, "an invalid file was loaded"
    values = outcome.values
    labels, pixels = (values[:, 0], values[:, 1:]) if labelled else (None, values)
    assert digits.images.dtype == torch.uint8
    assert torch.equal(digits.images, torch.from_numpy(pixels.astype(np.uint8)).reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
    if labelled:
        assert digits.labels.dtype == torch.int64 and digits.labels.tolist() == labels.tolist()
    else:
        assert digits.labels is None
    return "loaded" + (" (lenient)" if outcome.may_fail else "")


def check_message(message: str, outcome: Outcome) -> None:
    """The line (and column, and value) the message names are ones the oracle found wrong."""
    if outcome.lines is None:
        return
    located = re.match(r"line (\d+)(?:, column '([^']*)')?: (.*)$", message)
    assert located, f"the error names no line: {message!r}"
    line, column, detail = int(located[1]), located[2], located[3]
    assert line in outcome.lines, f"line {line} is not one of the bad lines {sorted(outcome.lines)}: {message!r}"
    if line == 1 and column is None:  # the header
        for pattern in (r"unexpected column '([^']*)'", r"column \d+ is '([^']*)'", r"column '([^']*)' appears"):
            named = re.search(pattern, detail)
            assert not named or named[1] in outcome.header, f"'{named[1]}' is not in the header: {message!r}"
        missing = re.search(r"missing column '([^']*)'", detail)
        assert not missing or missing[1] not in outcome.header, message
        return
    if column is None or line in outcome.any_column:
        return
    assert (line, column) in outcome.cells, f"line {line}, column '{column}' holds a valid cell: {message!r}"
    outside = re.fullmatch(r"(\S+) is outside 0\.\.\d+", detail)
    if outside:
        number = outcome.cells[(line, column)]
        assert number is not None and math.isclose(float(outside[1]), number, rel_tol=1e-9), message


# -- the mutations --------------------------------------------------------------------------------------

@st.composite
def valid_table(draw: st.DrawFn, labelled: bool) -> tuple[list[str], list[list[str]]]:
    """A valid header and 1-3 rows: mostly 0 pixels, a few others anywhere in 0..255."""
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        pixels = ["0"] * NUM_PIXELS
        for at, value in draw(st.lists(st.tuples(st.integers(0, NUM_PIXELS - 1), st.integers(0, PIXEL_MAX)),
                                       max_size=4)):
            pixels[at] = str(value)
        rows.append(([str(draw(st.integers(0, NUM_CLASSES - 1)))] if labelled else []) + pixels)
    return columns_of(labelled), rows


def column_index(draw: st.DrawFn, width: int) -> int:
    """Near either end mostly (the label, pixel0, pixel783), anywhere sometimes."""
    return draw(st.one_of(st.integers(0, 2), st.integers(width - 2, width - 1), st.integers(0, width - 1)))


def mutate_table(draw: st.DrawFn, header: list[str], rows: list[list[str]]) -> None:
    """One mutation of the header or rows, in place."""
    kind = draw(st.sampled_from(["cell"] * 12 + ["text cell"] * 4 + [
        "rename", "drop name", "extra name", "duplicate name", "drop column", "extra column", "swap columns",
        "extra field", "extra field", "missing field", "missing field", "duplicate row", "duplicate row",
        "delete row", "no rows",
    ]))
    width = len(header)
    row = draw(st.integers(0, max(len(rows) - 1, 0)))
    at = column_index(draw, width)
    if kind in ("cell", "text cell", "extra field", "missing field", "duplicate row", "delete row") and not rows:
        return
    if kind == "cell":
        rows[row][min(at, len(rows[row]) - 1)] = draw(st.sampled_from(ODD_CELLS))
    elif kind == "text cell":
        rows[row][min(at, len(rows[row]) - 1)] = draw(st.text(st.sampled_from("0123456789 .-+eE\"'\t,x"), max_size=5))
    elif kind == "rename":
        header[at] = draw(st.sampled_from(ODD_NAMES + header[:3] + header[-2:]))
    elif kind == "drop name":
        del header[at]
    elif kind == "extra name":
        header.insert(at, draw(st.sampled_from(ODD_NAMES + ["extra"])))
    elif kind == "duplicate name":
        header.insert(draw(st.integers(0, width)), header[at])
    elif kind == "drop column":
        for cells in [header, *rows]:
            del cells[min(at, len(cells) - 1)]
    elif kind == "extra column":
        for cells in [header, *rows]:
            cells.insert(at, "extra" if cells is header else "0")
    elif kind == "swap columns":
        other = column_index(draw, width)
        for cells in [header, *rows] if draw(st.booleans()) else [header]:
            if max(at, other) < len(cells):
                cells[at], cells[other] = cells[other], cells[at]
    elif kind == "extra field":
        rows[row].insert(at, "0")
    elif kind == "missing field":
        del rows[row][min(at, len(rows[row]) - 1)]
    elif kind == "duplicate row":
        rows.insert(draw(st.integers(0, len(rows))), list(rows[row]))
    elif kind == "delete row":
        del rows[row]
    elif kind == "no rows":
        rows.clear()


def position(size: int, rows_from: int = 0) -> st.SearchStrategy[int]:
    """A byte offset in 0..size: anywhere, in the rows (from `rows_from`; the header takes most of a
    small file's bytes), or near the end (the last row, the gzip trailer)."""
    rows_from = min(rows_from, size)
    return st.one_of(st.integers(0, size), st.integers(rows_from, size), st.integers(max(size - 64, 0), size))


@st.composite
def mutated_files(draw: st.DrawFn) -> Case:
    """(file name, its bytes, labelled): a valid table, damaged at several levels."""
    labelled = draw(st.booleans())
    header, rows = draw(valid_table(labelled))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
        mutate_table(draw, header, rows)
    lines = [",".join(cells) for cells in [header, *rows]]
    if draw(st.integers(0, 4)) == 0:  # a blank or whitespace-only line, the header's too
        lines.insert(draw(st.sampled_from(range(len(lines), -1, -1))), draw(st.sampled_from(["", "", " ", "\t", "  ,"])))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    ending = draw(st.sampled_from(["", newline, newline, newline + newline, "\r\r\n"]))
    bom = draw(st.sampled_from(["", "", "\ufeff", "\ufeff\ufeff"]))
    text = bom + newline.join(lines) + ending
    data = text.encode(draw(st.sampled_from(["utf-8"] * 14 + ["utf-16", "utf-16-le"])))
    rows_from = len((bom + lines[0]).encode())
    if draw(st.integers(0, 4)) == 0:  # latin-1, NUL, a stray delimiter or quote: any byte, anywhere
        at = draw(position(len(data), rows_from))
        byte = draw(st.one_of(st.sampled_from(ODD_BYTES), st.binary(min_size=1, max_size=1)))
        data = data[:at] + byte + data[at + draw(st.integers(0, 1)):]
    if draw(st.integers(0, 5)) == 0:  # cut anywhere, even inside a character
        data = data[:draw(position(len(data), rows_from))]
    compression = draw(st.sampled_from(["none"] * 8 + ["gzip"] * 4 + ["corrupt gzip", "truncated gzip",
                                                                       "plain named .gz"]))
    if compression in ("gzip", "corrupt gzip", "truncated gzip"):
        data = gzip.compress(data, mtime=0)
    if compression == "corrupt gzip":
        at = draw(position(len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif compression == "truncated gzip":
        data = data[:draw(position(len(data) - 1))]
    name = ("train" if labelled else "test") + (".csv" if compression == "none" else ".csv.gz")
    return Case((name, data, labelled))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutated")


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=mutated_files())
def test_a_mutated_csv_loads_exactly_or_fails_with_one_line(folder, case):
    """EXAMPLES (1200) mutated files, the same ones on every run: the right tensors, or one DataError line
    naming the file and, for a bad row or cell, a line (and column) that really is bad."""
    name, data, labelled = case
    path = folder / name
    path.write_bytes(data)
    event(check_outcome(path, labelled, expected_outcome(name, data, labelled)))  # --hypothesis-show-statistics


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("newline, bom", [("\n", ""), ("\r\n", "\ufeff"), ("\r", "")])
def test_the_oracle_accepts_the_valid_files_it_starts_from(folder, labelled, newline, bom):
    """The oracle itself: an unmutated file (any line end, with or without a BOM) must load."""
    header, rows = columns_of(labelled), [([str(3)] if labelled else []) + ["0"] * 783 + ["255"]] * 2
    text = bom + newline.join(",".join(cells) for cells in [header, *rows]) + newline
    path = folder / "valid.csv"
    path.write_text(text, newline="")
    outcome = expected_outcome(path.name, path.read_bytes(), labelled)
    assert outcome.may_load and not outcome.may_fail
    check_outcome(path, labelled, outcome)


ZEROS = ",".join(["0"] * NUM_PIXELS)


@pytest.mark.parametrize("rows, line", [
    ([ZEROS, ZEROS + ",0"], 3),  # a field too many
    ([ZEROS, "", ZEROS], 3),  # a blank line
    ([ZEROS[:-1] + "256"], 2),  # a pixel above 255
    ([ZEROS, '"' + ZEROS], 3),  # an unclosed quote
])
def test_the_oracle_refuses_what_it_should(rows, line):
    """The oracle is no rubber stamp: these must fail, naming the line; a truncated gzip must fail too."""
    data = "\n".join([",".join(columns_of(False)), *rows, ""]).encode()
    outcome = expected_outcome("test.csv", data, labelled=False)
    assert not outcome.may_load and outcome.may_fail and outcome.lines == {line}
    assert not expected_outcome("test.csv.gz", gzip.compress(data)[:-4], labelled=False).may_load
