"""`fit --ckpt_path last`: the previous run continued in its own folder, and never while it still trains."""

from __future__ import annotations

import os
import signal

import torch
from filelock import FileLock

from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.runs.lock import LOCK_FILE, PID_FILE, training_pid

from helpers.cli import run_cli, start_cli, tiny_run_args, wait_for, workdir_args
from helpers.data import random_digits, write_tiny_data
from helpers.errors import one_line_error
from helpers.runs import checkpoints


def test_resume_with_ckpt_path_last_continues_the_previous_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_digits_csv(data / "train.csv", *random_digits(120))
    run_cli("fit", *workdir_args(tmp_path), cwd=tmp_path)
    result = run_cli("fit", *workdir_args(tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "2"), cwd=tmp_path)
    assert "Restoring states from the checkpoint" in result.stdout + result.stderr
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"], "logs into the same run"
    state = torch.load(checkpoints(tmp_path) / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 6  # 2 epochs of 3 batches, not 1 of a fresh run


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
