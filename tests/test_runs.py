"""Run folders: claimed atomically, and never resumed while their run still trains."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from filelock import FileLock

from digit_recognizer.runs.lock import LOCK_FILE, PID_FILE, training_pid
from digit_recognizer.runs import RunLogger

from conftest import run_cli, start_cli, tiny_run_args, wait_for, write_tiny_data
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


@pytest.mark.slow
def test_a_run_that_is_still_training_is_not_resumed(tmp_path):
    write_tiny_data(tmp_path)
    args = tiny_run_args(tmp_path / "data")
    run_cli("fit", *args, cwd=tmp_path)
    run = tmp_path / "lightning_logs" / "version_0"
    assert training_pid(run) is None, "a finished run holds no lock"
    with FileLock(run / LOCK_FILE, timeout=0):  # as a training process holds it
        (run / PID_FILE).write_text("4242")
        result = run_cli("fit", *args, "--ckpt_path", "last", cwd=tmp_path, check=False)
    assert "is still training (process 4242)" in one_line_error(result.returncode, result.stderr)
    run_cli("fit", *args, "--ckpt_path", "last", "--trainer.max_epochs", "2", cwd=tmp_path)  # free again: resumes


@pytest.mark.slow
def test_every_fit_locks_its_run_while_it_trains(tmp_path):
    """The lock comes with every run (the standard callbacks), not from a test: a second `fit
    --ckpt_path last` while the first one trains is refused, naming the first one's process."""
    write_tiny_data(tmp_path)
    args = tiny_run_args(tmp_path / "data", "--trainer.max_epochs", "1000")
    training = start_cli("fit", *args, cwd=tmp_path)
    try:
        wait_for(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", training)
        result = run_cli("fit", *args, "--ckpt_path", "last", cwd=tmp_path, check=False)
        assert f"is still training (process {training.pid})" in one_line_error(result.returncode, result.stderr)
    finally:
        os.kill(training.pid, signal.SIGTERM)
        training.communicate(timeout=120)
    assert training_pid(tmp_path / "lightning_logs" / "version_0") is None, "the lock goes with the process"


def test_discard_of_a_logger_that_logged_nothing_removes_its_event_file(tmp_path):
    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    logger.experiment  # Lightning creates the event file while it sets a run up
    assert list(Path(logger.log_dir).glob("events.out.tfevents.*"))
    logger.discard()
    assert not (tmp_path / "runs").exists()


def test_discard_keeps_the_events_of_a_run_that_logged_metrics(tmp_path):
    """A run that fails after some epochs (a full disk at the next checkpoint) keeps their record:
    `report` and TensorBoard still show them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    logger.log_metrics({"val/acc": 0.5, "epoch": 0}, step=3)
    logger.discard()
    events = list(Path(logger.log_dir).glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = EventAccumulator(str(events[0])).Reload().Scalars("val/acc")
    assert [(s.step, s.value) for s in scalars] == [(3, 0.5)]
