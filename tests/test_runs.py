"""Run folders: claimed atomically, and never resumed while their run still trains."""

from __future__ import annotations

import fcntl
from pathlib import Path

from digit_recognizer.callbacks.run_lock import LOCK_FILE, training_pid
from digit_recognizer.runs import RunLogger

from conftest import run_cli, tiny_run_args, write_tiny_data
from test_bad_input import one_line_error


def test_each_logger_claims_its_own_folder_even_when_the_listing_is_stale(tmp_path, monkeypatch):
    first = RunLogger(save_dir=str(tmp_path), name="runs")
    assert first.version == 0 and (tmp_path / "runs" / "version_0").is_dir()
    # A second process that listed the folder before the first claimed version_0 picks 0 as well:
    # the exclusive mkdir makes it move on instead of sharing the folder.
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(()))
    second = RunLogger(save_dir=str(tmp_path), name="runs")
    assert second.version == 1


def test_discard_takes_back_an_unused_claimed_folder(tmp_path):
    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    folder = Path(logger.log_dir)
    assert folder.is_dir()
    logger.discard()
    assert not folder.exists() and not (tmp_path / "runs").exists()


def test_a_run_that_is_still_training_is_not_resumed(tmp_path):
    write_tiny_data(tmp_path)
    args = tiny_run_args(tmp_path / "data")
    run_cli("fit", *args, cwd=tmp_path)
    run = tmp_path / "lightning_logs" / "version_0"
    assert training_pid(run) is None, "a finished run holds no lock"
    with open(run / LOCK_FILE, "w") as lock:  # as a training process holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        result = run_cli("fit", *args, "--ckpt_path", "last", cwd=tmp_path, check=False)
    assert "is still training (process 4242)" in one_line_error(result.returncode, result.stderr)
    run_cli("fit", *args, "--ckpt_path", "last", "--trainer.max_epochs", "2", cwd=tmp_path)  # free again: resumes
