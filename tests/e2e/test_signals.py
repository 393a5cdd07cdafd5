"""SIGTERM and Ctrl-C during `report` and `ensemble`: exit 143 / 130 at once, no partial file, no
member process left running. Each signal is sent at a known point by the process itself (a callback
from tests/helpers/signal_at.py, or a prelude that wraps the function that is writing), never after a sleep."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from digit_recognizer.report import CURVES_FILE
from digit_recognizer.names import PROJECTOR_CONFIG

from helpers.cli import TESTS_ON_PATH, group_survivors, run_cli, start_cli, tiny_run_args, wait_for, workdir_args
from helpers.data import write_tiny_data


SIGNALS = pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                                  ids=["SIGTERM", "SIGINT"])
OLD_SUBMISSION = "ImageId,Label\n1,7\n"

# Writes part of the file, then the process signals itself; the line after it runs only if nothing stopped it.
SIGNAL_IN_PNG = """
import os
from matplotlib.figure import Figure
def savefig(self, target, *args, **kwargs):
    with open(target, "wb") as file:
        file.write(b"\\x89PNG half a figure")
    os.kill(os.getpid(), {signum})
    raise AssertionError("the signal did not stop report")
Figure.savefig = savefig
"""

SIGNAL_IN_EMBEDDING = """
import os
import torch.utils.tensorboard.writer as writer
def make_mat(matrix, save_path):
    with open(os.path.join(save_path, "tensors.tsv"), "w") as file:
        file.write("0.5\\t")
    os.kill(os.getpid(), {signum})
    raise AssertionError("the signal did not stop report")
writer.make_mat = make_mat
"""

# Signals the ensemble itself just after the second member's process has started.
SIGNAL_AFTER_SECOND_MEMBER_STARTS = """
import os, subprocess
class Popen(subprocess.Popen):
    started = 0
    def __init__(self, args, *rest, **options):
        super().__init__(args, *rest, **options)
        if "fit" in args:
            Popen.started += 1
            if Popen.started == 2:
                os.kill(os.getpid(), {signum})
subprocess.Popen = Popen
"""


def finish(process: subprocess.Popen, timeout: float = 180) -> str:
    """The process's output once it has exited (it must within `timeout`)."""
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running {timeout} s after the signal:\n{process.communicate()[0][-3000:]}") from None


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@contextmanager
def ensemble(*args: str, cwd: Path, prelude: str = "") -> Iterator[subprocess.Popen]:
    """`ensemble ARGS` in a process group of its own, killed whole afterwards: no member outlives a test."""
    process = start_cli("ensemble", *args, cwd=cwd, prelude=prelude, env=TESTS_ON_PATH, new_session=True)
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run without a projector embedding, so that `report` writes one."""
    root = tmp_path_factory.mktemp("report")
    write_tiny_data(root)
    run_cli("fit", *tiny_run_args(root / "data", "--inspection.embedding_images", "0"), cwd=root)
    return root / "lightning_logs" / "version_0"


@SIGNALS
def test_a_signal_while_report_writes_a_figure_keeps_the_old_one(finished_run, tmp_path, signum, status):
    out = tmp_path / "figures"
    out.mkdir()
    (out / CURVES_FILE).write_bytes(b"the old figure")
    process = start_cli("report", str(finished_run), "--output-dir", str(out), "--embedding-images", "0", cwd=tmp_path,
                        prelude=SIGNAL_IN_PNG.format(signum=int(signum)))
    output = finish(process)
    assert process.returncode == status, output[-3000:]
    assert "Traceback" not in output and "wrote" not in output
    assert files_under(out) == {CURVES_FILE}, "no other figure, no temporary file"
    assert (out / CURVES_FILE).read_bytes() == b"the old figure"


@SIGNALS
def test_a_signal_while_report_writes_the_embedding_leaves_the_run_as_it_was(finished_run, tmp_path, signum, status):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = files_under(run)
    process = start_cli("report", str(run), "--output-dir", str(tmp_path / "figures"), cwd=tmp_path,
                        prelude=SIGNAL_IN_EMBEDDING.format(signum=int(signum)))
    output = finish(process)
    assert process.returncode == status, output[-3000:]
    assert "Traceback" not in output and "projector embedding" not in output
    assert files_under(run) == before, "no part of an embedding, no projector config, no event file"


@SIGNALS
def test_a_signal_while_fit_writes_its_embedding_leaves_no_part_of_it(tmp_path, signum, status):
    """The projector embedding `fit` writes at its end is staged and moved in whole, as report's is."""
    write_tiny_data(tmp_path)
    process = start_cli("fit", *tiny_run_args(tmp_path / "data"), cwd=tmp_path,
                        prelude=SIGNAL_IN_EMBEDDING.format(signum=int(signum)))
    output = finish(process)
    assert process.returncode == status, output[-3000:]
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    partial = [name for name in files_under(run) if "val_embedding" in name or name.startswith(".embedding-")
               or name == PROJECTOR_CONFIG]
    assert not partial, "no part of an embedding, no projector config"


def ensemble_args(root: Path, *extra: str) -> list[str]:
    """Two seeds on tiny data, the submission at root/old.csv (which holds an old submission)."""
    (root / "old.csv").write_text(OLD_SUBMISSION)
    write_tiny_data(root)
    return ["--seeds", "1", "2", *workdir_args(root, "--submission.path", str(root / "old.csv"), *extra)]


def trained_runs(root: Path) -> list[str]:
    """The run folders that hold anything: the ensemble claims every member's folder up front
    (ensemble_0/ensemble.json lists them, for a later run of the command to continue)."""
    return sorted(path.name for path in (root / "lightning_logs").glob("version_*") if any(path.iterdir()))


@SIGNALS
def test_a_signal_in_a_members_training_stops_the_sequential_ensemble(tmp_path, signum, status):
    """The members train in the ensemble's own process: the signal stops it in the first member,
    which saves a last.ckpt to resume; the second member never starts, nothing is submitted."""
    args = ensemble_args(tmp_path, "--trainer.callbacks+=helpers.signal_at.SignalAt", "--trainer.callbacks.epoch", "0",
                         "--trainer.callbacks.batch", "1", "--trainer.callbacks.signum", str(int(signum)))
    with ensemble(*args, cwd=tmp_path) as process:
        output = finish(process)
    assert process.returncode == status, output[-3000:]
    assert "Traceback" not in output
    assert trained_runs(tmp_path) == ["version_0"] and (tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt").is_file()
    assert (tmp_path / "old.csv").read_text() == OLD_SUBMISSION


@pytest.mark.parametrize("hook", ["train_end", "fit_end"])
def test_sigterm_as_a_member_finishes_stops_the_sequential_ensemble(tmp_path, hook):
    """A SIGTERM after a member's last epoch (which Lightning records but no loop acts on, or
    which comes once Lightning has restored the process's handlers) still stops the ensemble
    before the next member: exit 143, nothing submitted."""
    args = ensemble_args(tmp_path, "--trainer.callbacks+=helpers.signal_at.SignalAtFitEnd", "--trainer.callbacks.hook", hook)
    with ensemble(*args, cwd=tmp_path) as process:
        output = finish(process)
    assert process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    assert trained_runs(tmp_path) == ["version_0"], "the second member must not start"
    assert (tmp_path / "old.csv").read_text() == OLD_SUBMISSION


@SIGNALS
def test_a_signal_to_a_parallel_ensemble_stops_its_training_members(tmp_path, signum, status):
    """Signalled while both members train, the ensemble stops them (each saves a last.ckpt to
    resume), waits for them and exits; the old submission stays."""
    args = ensemble_args(tmp_path, "--trainer.max_epochs", "1000")
    with ensemble(*args, "--parallel", "2", cwd=tmp_path) as process:
        for run in ("version_0", "version_1"):  # both have trained an epoch
            wait_for(tmp_path / "lightning_logs" / run / "checkpoints" / "last.ckpt", process)
        process.send_signal(signum)
        output = finish(process)
        assert process.returncode == status, output[-3000:]
        assert not group_survivors(process.pid), "a member outlived the ensemble"
    assert "Traceback" not in output
    assert (tmp_path / "old.csv").read_text() == OLD_SUBMISSION


@SIGNALS
def test_a_signal_while_a_member_process_starts_stops_that_member_too(tmp_path, signum, status):
    """A signal that arrives while a member's process is being started (Popen forks, then waits
    for the exec) must not leave that new process running, unknown to the ensemble."""
    args = ensemble_args(tmp_path, "--trainer.max_epochs", "1000")
    with ensemble(*args, "--parallel", "2", cwd=tmp_path,
                  prelude=SIGNAL_AFTER_SECOND_MEMBER_STARTS.format(signum=int(signum))) as process:
        output = finish(process)
        assert process.returncode == status, output[-3000:]
        assert not group_survivors(process.pid), "a member outlived the ensemble"
    assert "Traceback" not in output
    assert (tmp_path / "old.csv").read_text() == OLD_SUBMISSION
