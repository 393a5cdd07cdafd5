"""K-fold cross-validation: the folds themselves, their bad input, and `ensemble --folds K`'s
out-of-fold outputs, continued exactly after a stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from digit_recognizer.data.csv import read_digits_csv, write_digits_csv

from helpers.cli import TESTS_ON_PATH, run_cli
from helpers.data import random_digits, write_tiny_data
from helpers.paths import REAL_DATA


# -- the command ------------------------------------------------------------------------------------

def nine_hundred_rows(root: Path) -> Path:
    """root/data with 900 rows of the real train.csv when the real data is here (else 900 made-up
    rows) and a 50-row test.csv."""
    folder = root / "data"
    folder.mkdir()
    if REAL_DATA is not None:
        digits = read_digits_csv(next(REAL_DATA.glob("train.csv*")), labelled=True)
        write_digits_csv(folder / "train.csv", digits.images[:900], digits.labels[:900])
    else:
        write_digits_csv(folder / "train.csv", *random_digits(900))
    write_digits_csv(folder / "test.csv", random_digits(50, seed=1)[0], None)
    return folder


def folds_args(root: Path, *extra: str) -> list[str]:
    return ["--config", "quick.yaml", "--folds", "3", "--data.data_dir", str(root / "data"), "--data.download", "false",
            "--data.cache_dir", str(root / "cache"), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
            "--inference.shifts", "[[1,0]]", *extra]


def test_ensemble_folds_writes_oof_rows_accuracy_figures_and_submission(tmp_path):
    nine_hundred_rows(tmp_path)
    result = run_cli("ensemble", *folds_args(tmp_path), cwd=tmp_path, timeout=600)
    folder = tmp_path / "lightning_logs" / "ensemble_0"
    oof = pd.read_csv(folder / "oof.csv")
    train = read_digits_csv(tmp_path / "data" / "train.csv", labelled=True)
    assert len(oof) == 900 and oof["line"].tolist() == list(range(2, 902)), "each row exactly once, in the file's order"
    assert oof["label"].tolist() == train.labels.tolist()
    assert sorted(oof["fold"].unique().tolist()) == [0, 1, 2]
    probabilities = oof[[f"p{d}" for d in range(10)]].to_numpy()
    assert (probabilities.argmax(1) == oof["predicted"].to_numpy()).all()
    accuracy = (oof["label"] == oof["predicted"]).mean()
    summary = json.loads((folder / "oof.json").read_text())
    assert summary["accuracy"] == pytest.approx(accuracy) and summary["rows"] == 900
    assert f"out-of-fold accuracy: {accuracy:.5f}" in result.stdout
    assert summary["shifts"] == [[1, 0]]
    assert (folder / "oof_confusion_matrix.png").stat().st_size > 0
    submission = pd.read_csv(folder / "submission.csv")
    assert submission["ImageId"].tolist() == list(range(1, 51))
    assert "kaggle competitions submit" in result.stdout
    state = json.loads((folder / "ensemble.json").read_text())
    assert state["complete"] and [m["member"] for m in state["members"]] == ["fold 0", "fold 1", "fold 2"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--folds", "1"], "--folds must be at least 2"),
    (["--folds", "3", "--data.val_fraction", "0.1"], "leave out --data.val_fraction"),
    (["--folds", "3", "--data.fold", "1"], "leave out --data.fold"),
    (["--folds", "30"], "data.folds 30 is more than the smallest class has rows (20)"),
])
def test_bad_folds_are_one_line_before_any_training(tmp_path, extra, message):
    write_tiny_data(tmp_path)
    args = ["--config", "quick.yaml", "--data.data_dir", str(tmp_path / "data"), "--data.download", "false", *extra]
    result = run_cli("ensemble", *args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "lightning_logs").glob("version_*/checkpoints")), "nothing trained"


def test_a_stopped_folds_run_continues_with_what_was_left_and_ends_as_an_uninterrupted_one(tmp_path):
    """SIGTERM in fold 1's training; the same command again keeps fold 0 as it was, resumes fold 1
    from its last.ckpt, trains fold 2, and writes the uninterrupted run's oof.csv."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    for root in (whole, stopped):
        root.mkdir()
        write_tiny_data(root)
    run_cli("ensemble", *folds_args(whole, "--trainer.max_epochs", "2"), cwd=whole, timeout=600)
    signal_once = ["--trainer.callbacks+=helpers.signal_at.SignalOnceAcrossRuns",
                   "--trainer.callbacks.marker", str(stopped / "signalled"), "--trainer.callbacks.fold", "1"]
    args = folds_args(stopped, "--trainer.max_epochs", "2", *signal_once)
    env = {**os.environ, **TESTS_ON_PATH}
    first = subprocess.run(start_cli_command(args), cwd=stopped, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 143, first.stdout[-2000:] + first.stderr[-2000:]
    runs = stopped / "lightning_logs"
    fold0 = (runs / "version_0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert (runs / "version_1" / "checkpoints" / "last.ckpt").is_file(), "fold 1 saved where it stopped"
    assert not (runs / "version_2" / "checkpoints").exists(), "fold 2 had not started"
    again = subprocess.run(start_cli_command(args), cwd=stopped, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "continuing" in again.stdout and "(1 of 3 members finished)" in again.stdout
    assert (runs / "version_0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == fold0, "fold 0 not trained twice"
    assert not (runs / "ensemble_1").exists(), "the same ensemble, continued"
    expected = pd.read_csv(whole / "lightning_logs" / "ensemble_0" / "oof.csv")
    resumed = pd.read_csv(runs / "ensemble_0" / "oof.csv")
    pd.testing.assert_frame_equal(resumed, expected, atol=1e-6, rtol=0)


def start_cli_command(args: list[str]) -> list[str]:
    """`python -m digit_recognizer ensemble ARGS` (SIGTERM exits 143 through the package's own handler)."""
    return [sys.executable, "-m", "digit_recognizer", "ensemble", *args]
