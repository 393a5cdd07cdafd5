"""Interruptions against real training subprocesses: signals, kill -9, exact resume, predict."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from digit_recognizer.report import read_events

from helpers.cli import run_cli, start_cli, tiny_run_args, wait_for


CHECKPOINTS = Path("lightning_logs/version_0/checkpoints")


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# Writes half of the chosen file, then waits to be killed: a kill -9 that lands mid-write.
HANG_IN_WRITE = """
import io, os, time
def hang_writing(data: bytes, target) -> None:
    half = data[: len(data) // 2]
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            file.write(half)
    else:
        target.write(half)
        target.flush()
    with open(os.environ["HANG_MARKER"], "w") as marker:
        marker.write(str(target))
    time.sleep(600)
"""

HANG_IN_SECOND_LAST_CKPT = HANG_IN_WRITE + """
import torch
real_save = torch.save
def save(obj, target, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("epoch") == 1 and "last.ckpt" in str(target):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        hang_writing(buffer.getvalue(), target)
    real_save(obj, target, *args, **kwargs)
torch.save = save
"""

HANG_IN_SUBMISSION = HANG_IN_WRITE + """
import pandas as pd
real_to_csv = pd.DataFrame.to_csv
def to_csv(self, target, *args, **kwargs):
    hang_writing(real_to_csv(self, None, *args, **kwargs).encode(), target)
pd.DataFrame.to_csv = to_csv
"""


def test_kill_9_mid_checkpoint_write_then_resume_finishes_the_planned_epochs(tiny_data, tmp_path):
    marker = tmp_path / "writing"
    args = tiny_run_args(tiny_data, "--trainer.max_epochs", "3")
    process = start_cli("fit", *args, cwd=tmp_path, prelude=HANG_IN_SECOND_LAST_CKPT, env={"HANG_MARKER": str(marker)})
    wait_for(marker, process)
    process.kill()  # SIGKILL while half of epoch 1's last.ckpt is on disk
    process.communicate(timeout=60)
    assert ".last.ckpt." in marker.read_text(), "the checkpoint must be written beside last.ckpt, then renamed"

    checkpoints = sorted((tmp_path / CHECKPOINTS).glob("*.ckpt"))
    assert checkpoints, "epoch 0's checkpoints should exist"
    for checkpoint in checkpoints:
        load(checkpoint)  # raises on a truncated file
    assert load(tmp_path / CHECKPOINTS / "last.ckpt")["epoch"] == 0

    run_cli("fit", *args, "--ckpt_path", "last", cwd=tmp_path)
    final = load(tmp_path / CHECKPOINTS / "last.ckpt")
    assert (final["epoch"], final["global_step"]) == (2, 3 * 3)  # 3 epochs of 3 batches, all in version_0
    assert not (tmp_path / "lightning_logs" / "version_1").exists()


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_during_fit_saves_a_resumable_checkpoint(tiny_data, tmp_path, signum, status):
    args = tiny_run_args(tiny_data, "--trainer.max_epochs", "1000")
    process = start_cli("fit", *args, cwd=tmp_path)
    wait_for(tmp_path / CHECKPOINTS / "last.ckpt", process)  # training is under way
    time.sleep(0.5)
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # show what the process printed, e.g. a signal lost in a finalizer
        process.kill()
        raise AssertionError(f"still running 120 s after {signum.name}:\n{process.communicate()[0][-3000:]}") from None
    finally:
        process.kill()  # never leave a 1000-epoch training behind when the test fails
    assert process.returncode == status, output[-3000:]
    assert "Traceback" not in output
    assert "checkpoint saved to" in output and "--ckpt_path last" in output

    interrupted = load(tmp_path / CHECKPOINTS / "last.ckpt")
    # The step the interruption reports is the one saved (on a loaded machine it can still be 3,
    # the end of epoch 0, so the step alone cannot tell who wrote the file).
    stopped_at = int(re.search(r"stopped in epoch \d+ at step (\d+)", output).group(1))
    assert interrupted["global_step"] == stopped_at
    epochs = interrupted["epoch"] + 2  # finish the interrupted epoch and one more
    started = time.perf_counter()
    run_cli("fit", *args, "--trainer.max_epochs", str(epochs), "--ckpt_path", "last", cwd=tmp_path)
    resume_seconds = time.perf_counter() - started
    final = load(tmp_path / CHECKPOINTS / "last.ckpt")
    assert final["epoch"] == epochs - 1 and final["global_step"] >= interrupted["global_step"] + 3

    run = tmp_path / CHECKPOINTS.parent
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == epochs, "the resume's config"
    resumed = read_events(run)[-1]  # the resuming process's own event file
    epoch_seconds = [e.value for e in resumed.Scalars("time/epoch_seconds")]
    # the interrupted epoch is timed from the resume, not from a start the resumed process never saw
    assert epoch_seconds and 0 < min(epoch_seconds) and max(epoch_seconds) < resume_seconds


def test_resume_at_an_epoch_boundary_reproduces_the_uninterrupted_weights(tiny_data, tmp_path):
    args = tiny_run_args(tiny_data, "--trainer.accelerator", "cpu", "--trainer.deterministic", "true")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir(), resumed.mkdir()
    run_cli("fit", *args, "--trainer.max_epochs", "2", cwd=straight)
    run_cli("fit", *args, "--trainer.max_epochs", "1", cwd=resumed)
    after_one = load(resumed / CHECKPOINTS / "last.ckpt")["state_dict"]
    run_cli("fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=resumed)

    expected = load(straight / CHECKPOINTS / "last.ckpt")
    got = load(resumed / CHECKPOINTS / "last.ckpt")
    assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"]) == (1, 6)
    assert not all(torch.equal(after_one[name], got["state_dict"][name]) for name in after_one), "epoch 2 must train"
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), f"{name} differs after resuming"


def test_predict_killed_mid_write_keeps_the_old_submission_until_a_complete_one_replaces_it(tiny_data, tmp_path):
    run_cli("fit", *tiny_run_args(tiny_data), cwd=tmp_path)
    submission, marker = tmp_path / "out" / "submission.csv", tmp_path / "writing"
    submission.parent.mkdir()
    submission.write_text("ImageId,Label\n1,3\n")
    args = [*tiny_run_args(tiny_data), "--ckpt_path", "last", "--submission.path", str(submission)]

    process = start_cli("predict", *args, cwd=tmp_path, prelude=HANG_IN_SUBMISSION, env={"HANG_MARKER": str(marker)})
    wait_for(marker, process)
    assert submission.read_text() == "ImageId,Label\n1,3\n", "mid-write, the old submission is still whole"
    process.kill()
    process.communicate(timeout=60)
    assert submission.read_text() == "ImageId,Label\n1,3\n"
    assert [p.name for p in submission.parent.iterdir() if not p.name.startswith(".")] == ["submission.csv"]

    run_cli("predict", *args, cwd=tmp_path)
    lines = submission.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 51
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 51))
