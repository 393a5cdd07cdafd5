"""Two processes on the CPU (DDP, gloo): one run, one complete submission, each validation image
counted once, SIGTERM and a stuck collective ending every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pandas as pd
import pytest

from digit_recognizer.data.csv import write_digits_csv

from helpers.cli import TESTS_ON_PATH, default_run_args, group_survivors, run_cli, tiny_run_args, wait_for
from helpers.data import random_digits, write_tiny_data
from helpers.events import FN, FP, TN, TP, confusion_counts, pr_curves, read_events, read_tsv
from helpers.inspection import VAL_SIZE, run_args, write_train_csv


def test_ddp_confusion_matrix_counts_each_image_once(tmp_path):
    """Two CPU processes: the padded DistributedSampler would count one image twice (22)."""
    write_train_csv(tmp_path / "data")
    run_cli("fit", *run_args(tmp_path, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                             "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "2"), cwd=tmp_path)
    events = read_events(tmp_path / "lightning_logs" / "version_0")
    counts = confusion_counts(events)[-1]
    assert counts.sum().item() == VAL_SIZE
    assert counts.sum(dim=1).tolist() == [3] + [2] * 9
    assert "val/most_confident_mistakes" in events.Tags()["images"]  # gathered from both processes


def test_ddp_pr_curves_count_each_validation_image_once(tmp_path: Path):
    """Two CPU processes with 11 and 10 validation images: the gather must cut each one's padding."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(210))
    run_cli("fit", *tiny_run_args(folder, "--data.cache_dir", str(tmp_path / "cache"), "--data.batch_size", "8",
                                  "--trainer.strategy", "ddp", "--trainer.devices", "2",
                                  "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "2"), cwd=tmp_path)
    run = tmp_path / "lightning_logs" / "version_0"
    for digit, (curve,) in pr_curves(read_events(run)).items():
        assert curve[TP, 0] + curve[FN, 0] == (3 if digit == 0 else 2)  # the stratified split's class sizes
        assert curve[TP, 0] + curve[FP, 0] + curve[TN, 0] + curve[FN, 0] == 21
    (folder,) = run.glob("val_embedding/*")
    assert len(read_tsv(folder / "tensors.tsv")) == 11  # rank zero's share of the validation images


DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
RUN = Path("lightning_logs") / "version_0"
STOPPED_WAITING = "error: the processes of this multi-process run stopped waiting for each other ("


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """A folder with tiny data and one 2-process `fit` with a user's defaults (the model summary on)."""
    root = tmp_path_factory.mktemp("ddp")
    write_tiny_data(root)
    run_cli("fit", *default_run_args(root / "data", *DDP), cwd=root, timeout=300)
    return root


def start_ddp(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m digit_recognizer ARGS` in a process group of its own (searched and killed whole
    by the test), its stdout and stderr apart."""
    return subprocess.Popen([sys.executable, "-m", "digit_recognizer", *args], cwd=root, text=True,
                            env={**os.environ, **TESTS_ON_PATH, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_ddp_on_two_cpu_processes_writes_one_run_and_one_complete_submission(ddp_run: Path):
    """Default options: the submission goes into the run folder (SubmissionWriter reads that folder
    on process 0 alone; a collective there hung both processes forever)."""
    runs = list((ddp_run / "lightning_logs").iterdir())
    assert [run.name for run in runs] == ["version_0"], "one set of logs"
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir())[1:] == ["last.ckpt"]

    # 50 test images on 2 processes with batch 32: the second shard is padded with a repeat.
    result = run_cli("predict", *default_run_args(ddp_run / "data", *DDP, "--ckpt_path", "last"), cwd=ddp_run,
                     timeout=300)
    submission = (ddp_run / RUN / "submission.csv").resolve()
    assert result.stdout.count("written to") == 1 and f"Submission (50 rows) written to {submission}" in result.stdout
    frame = pd.read_csv(submission)
    assert frame["ImageId"].tolist() == list(range(1, 51)) and frame["Label"].between(0, 9).all()


def test_sigterm_stops_a_two_process_predict_and_leaves_no_process(ddp_run: Path, tmp_path: Path):
    """SIGTERM to the command (process 0, as `kill PID` sends it) while both processes predict."""
    started = tmp_path / "started"
    args = default_run_args(ddp_run / "data", *DDP, "--ckpt_path", "last", "--data.batch_size", "2",
                            "--submission.path", str(tmp_path / "submission.csv"),  # 13 batches of 1 s each
                            "--trainer.callbacks+=helpers.signal_at.SlowPredictBatches", "--trainer.callbacks.started",
                            str(started))
    out, err = signal_once_running(start_ddp(ddp_run, "predict", *args), started)
    assert "Traceback" not in err and not (tmp_path / "submission.csv").exists()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_two_process_fit_and_leaves_no_process(tmp_path: Path, signum: int, status: int):
    """SIGTERM to the command (process 0) once both processes train, or Ctrl-C to the terminal's
    process group (both processes): it saves last.ckpt to resume."""
    write_tiny_data(tmp_path)
    process = start_ddp(tmp_path, "fit", *default_run_args(tmp_path / "data", *DDP, "--trainer.max_epochs", "1000"))
    out, err = signal_once_running(process, tmp_path / RUN / "checkpoints" / "last.ckpt", signum, status,
                                   whole_group=signum == signal.SIGINT)
    assert "Traceback" not in err, err[-3000:]
    assert "continue with --ckpt_path last" in out + err


def signal_once_running(process: subprocess.Popen, ready: Path, signum: int = signal.SIGTERM, status: int = 143,
                        whole_group: bool = False) -> tuple[str, str]:
    """`signum` to process 0 (as `kill PID` sends it) or, `whole_group`, to every process of the
    command (as a terminal's Ctrl-C) once `ready` exists: it must exit `status` within 60 s with no
    process of its group left. Returns its (stdout, stderr)."""
    try:
        wait_for(ready, process)
        signalled = time.monotonic()
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 60 s after signal {signum}") from None
        assert process.returncode == status, (out + err)[-3000:]
        assert time.monotonic() - signalled < 60
        assert not group_survivors(process.pid), "a process of the run outlived it"
        return out, err
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_processes_that_wait_for_each_other_in_vain_end_with_one_line(ddp_run: Path):
    """Process 0 broadcasts while process 1 waits at a barrier: with a 60 s collective timeout the
    run ends within about 2 minutes, exit 1, one line instead of a traceback, no process left."""
    args = default_run_args(ddp_run / "data", *DDP, "--ckpt_path", "last",
                            "--trainer.callbacks+=helpers.probes.MismatchedCollective")
    begun = time.monotonic()
    process = start_ddp(ddp_run, "predict", *args, env={"DIGIT_RECOGNIZER_COLLECTIVE_TIMEOUT": "60"})
    try:
        try:
            out, err = process.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            raise AssertionError("still waiting 150 s after it started (the collective timeout is 60 s)") from None
        assert process.returncode == 1, (out + err)[-3000:]
        assert time.monotonic() - begun < 150
        assert "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert errors and all(line.startswith(STOPPED_WAITING) for line in errors), err[-3000:]
        deadline = time.monotonic() + 10  # process 1 may still be on its way out
        while group_survivors(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_survivors(process.pid), "a process of the run outlived it"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
