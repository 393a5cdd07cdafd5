"""A full disk (ENOSPC) for real: on a 256 KiB tmpfs mounted in a private mount namespace
(`unshare`, skipped where mounting is not permitted), and in a real `fit` whose checkpoint
writes fail from the second epoch on. Checkpoint and submission: one line naming the file and
"no space left on device", the previous file intact; the cache: a warning, and the data still loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digit_recognizer.checkpoints import check_checkpoint
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.report import CONFUSION_FILE, CURVES_FILE

from helpers.cli import TESTS_ON_PATH, run_cli, workdir_args
from helpers.data import random_digits, write_tiny_data
from helpers.errors import one_line_error
from helpers.paths import REPO


# -- on a real full filesystem ---------------------------------------------------------------------

ON_A_FULL_DISK = r"""
import json, sys
from pathlib import Path
import torch
from digit_recognizer.callbacks.submission import write_submission
from digit_recognizer.checkpoints import AtomicCheckpointIO
from digit_recognizer.data.cache import load_digits
from digit_recognizer.errors import UserError

full, train = Path(sys.argv[1]), Path(sys.argv[2])
results = {}
AtomicCheckpointIO().save_checkpoint({"epoch": 0, "state_dict": {"w": torch.ones(10)}}, full / "last.ckpt")
write_submission(full / "submission.csv", torch.arange(2), torch.tensor([4, 5]))

def attempt(name, write):
    try:
        write()
        results[name] = "written"
    except UserError as exc:
        results[name] = str(exc)

attempt("checkpoint", lambda: AtomicCheckpointIO().save_checkpoint(
    {"epoch": 1, "state_dict": {"w": torch.ones(1_000_000)}}, full / "last.ckpt"))
attempt("submission", lambda: write_submission(full / "submission.csv", torch.arange(100_000), torch.zeros(100_000, dtype=torch.int64)))
with open(full / "filler", "wb", buffering=0) as filler:  # take the rest of the space: the cache cannot fit
    try:
        while True:
            filler.write(b"\0" * 4096)
    except OSError:
        pass
digits = load_digits(train, labelled=True, cache_dir=full / "cache")
results["cache"] = len(digits)
results["last epoch"] = torch.load(full / "last.ckpt", weights_only=True)["epoch"]
results["submission rows"] = (full / "submission.csv").read_text().splitlines()
results["files"] = sorted(p.name for p in full.rglob("*"))
print("RESULTS " + json.dumps(results))
"""


def run_on_a_tiny_tmpfs(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """`python -c script full_dir *args` with full_dir a 256 KiB tmpfs in a mount namespace of its own
    (the mount vanishes with the process); skips the test where unshare or mount is not permitted."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        pytest.skip("needs Linux's unshare to mount a private tmpfs")
    full = tmp_path / "full"
    full.mkdir()
    namespace = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" || exit 97; shift; exec "$@"'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([*namespace, "sh", "-c", shell, "sh", str(full), sys.executable, "-c", script,
                             str(full), *args], capture_output=True, text=True, timeout=120, env=env)
    if result.returncode == 97 or (result.returncode != 0 and "RESULTS" not in result.stdout
                                   and "unshare:" in result.stderr):
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()[-300:]}")
    return result


def test_a_real_full_filesystem(tmp_path):
    images, labels = random_digits(50)
    write_digits_csv(tmp_path / "train.csv", images, labels)
    result = run_on_a_tiny_tmpfs(tmp_path, ON_A_FULL_DISK, str(tmp_path / "train.csv"))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.split("RESULTS ", 1)[1])
    full = tmp_path / "full"
    for name, file in [("checkpoint", "last.ckpt"), ("submission", "submission.csv")]:
        assert results[name].startswith(f"{full / file}: ") and "no space left on device" in results[name], results
    assert results["last epoch"] == 0
    assert results["submission rows"] == ["ImageId,Label", "1,4", "2,5"]
    assert results["cache"] == 50
    assert "no space left on device" in result.stderr and "continuing without it" in result.stderr
    assert results["files"] == ["cache", "filler", "last.ckpt", "submission.csv"], "no temporary files"


# -- during a real `fit` ---------------------------------------------------------------------------

def test_a_full_disk_in_the_second_epoch_keeps_the_first_epochs_checkpoint_and_record(tmp_path):
    """Saving a checkpoint fails with ENOSPC from the second epoch on: one line, exit 2, and what
    the first epoch left stays usable (last.ckpt resumes, its metrics stay in the event files, report draws them)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_tiny_data(tmp_path)
    args = workdir_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.callbacks+=helpers.probes.DiskFullFromEpoch",
                        "--trainer.callbacks.epoch", "1")
    result = run_cli("fit", *args, cwd=tmp_path, check=False, env=TESTS_ON_PATH)
    error = one_line_error(result.returncode, result.stderr).removeprefix("error: ")
    run = tmp_path / "lightning_logs" / "version_0"
    failed, _, reason = error.partition(": ")
    assert (tmp_path / failed).parent.resolve() == (run / "checkpoints").resolve() and failed.endswith(".ckpt"), error
    assert "no space left on device" in reason, error

    last = run / "checkpoints" / "last.ckpt"
    check_checkpoint(last, DigitClassifier())  # a whole checkpoint of this model: --ckpt_path last resumes
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    assert all(p.suffix == ".ckpt" and not p.name.startswith(".") for p in (run / "checkpoints").iterdir()), \
        "no temporary file"

    events = sorted(run.glob("events.out.tfevents.*"))
    assert events, "the run's event files were deleted"
    accumulator = EventAccumulator(str(events[0])).Reload()
    epoch_at_step = {e.step: int(e.value) for e in accumulator.Scalars("trainer/epoch")}
    assert 0 in [epoch_at_step.get(e.step) for e in accumulator.Scalars("val/acc")], "epoch 0's val/acc"

    for figure in run.glob("*.png"):
        figure.unlink()
    report = run_cli("report", str(run), "--embedding-images", "0", cwd=tmp_path)
    assert f"wrote {run / CURVES_FILE}" in report.stdout and (run / CURVES_FILE).is_file()
    assert (run / CONFUSION_FILE).is_file()
