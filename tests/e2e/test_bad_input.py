"""Bad input through the command line, in real processes: exit status 2, one `error:` line, no
traceback, nothing trained or written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digit_recognizer.data.csv import write_digits_csv

from helpers.cli import run_cli, tiny_run_args, workdir_args
from helpers.data import random_digits
from helpers.errors import one_line_error


def test_cli_bad_csv_names_file_line_and_column(tiny_data, tmp_path):
    """In a real process: exit status 2 and one line, no traceback; no run folder with checkpoints."""
    train = tiny_data / "train.csv"
    lines = train.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",3.5"  # line 6 of the file: its last pixel
    train.write_text("\n".join(lines) + "\n")
    result = run_cli("fit", *tiny_run_args(tiny_data), cwd=tmp_path, check=False)
    assert one_line_error(result.returncode, result.stderr) == (
        f"error: {train}: line 6, column 'pixel783': 3.5 is not a whole number"
    )
    assert not list(tmp_path.rglob("*.ckpt"))


def write_bad_train_csv(data: Path) -> None:
    lines = (data / "train.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[101] = "300"  # pixel100 of line 6
    lines[5] = ",".join(cells)
    (data / "train.csv").write_text("\n".join(lines) + "\n")


def test_bad_csv_stops_with_one_line_and_nonzero_exit(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_digits_csv(data / "train.csv", *random_digits(20))
    write_bad_train_csv(data)
    result = run_cli("fit", *workdir_args(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {data / 'train.csv'}: line 6, column 'pixel100': 300 is outside 0..255"
    )
    assert not (tmp_path / "lightning_logs").exists() or not list((tmp_path / "lightning_logs").rglob("*.ckpt"))
    verbose = run_cli("--verbose", "fit", *workdir_args(tmp_path), cwd=tmp_path, check=False)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
    assert "args parameter is intended" not in verbose.stderr, "the arguments without --verbose are passed on purpose"


@pytest.mark.parametrize("ckpt, message", [
    (None, "predict needs --ckpt_path"),
    ("last", "no run under .* has a checkpoint"),
    ("missing.ckpt", "missing.ckpt: checkpoint file not found"),
])
def test_checkpoint_problems_are_one_line_errors(tmp_path, tiny_data, ckpt, message):
    extra = ["--ckpt_path", ckpt] if ckpt else []
    result = run_cli("predict", *tiny_run_args(tiny_data, *extra), cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr.strip().splitlines()[-1])


def test_fit_without_data_exits_2_with_one_line_and_leaves_no_run_folder(tmp_path, no_credentials):
    (tmp_path / "empty").mkdir()
    args = tiny_run_args(tmp_path / "empty")
    args.remove("--data.download"), args.remove("false")
    env_free = run_cli("fit", *args, cwd=tmp_path, check=False)
    lines = env_free.stderr.strip().splitlines()
    assert env_free.returncode == 2 and lines[-1].startswith("error: ")
    assert "kaggle competitions download -c digit-recognizer" in lines[-1]
    assert not (tmp_path / "lightning_logs").exists(), "a command that failed before training leaves no run folder"
