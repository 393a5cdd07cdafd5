"""The data path, DDP on CPU (gloo) and mixed precision, on tiny data."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from digit_recognizer.data.in_memory import DigitTensors, collate_batch
from digit_recognizer.classifier import DigitClassifier

from conftest import default_run_args, run_cli, tiny_run_args, wait_for, write_tiny_data
from test_command_signals import TESTS_ON_PATH, group_survivors


class NoPerSampleFetch(DigitTensors):
    def __getitem__(self, index: int):
        raise AssertionError("the DataLoader fetched a single sample")


def test_a_batch_is_one_index_operation():
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    dataset = NoPerSampleFetch(images, torch.arange(10))
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collate_batch))
    assert [len(labels) for _, labels, _ in batches] == [4, 4, 2]
    assert torch.equal(batches[1][0], images[4:8]) and batches[1][0].dtype == torch.uint8
    assert batches[1][2].tolist() == [4, 5, 6, 7], "each image's row in its CSV comes along"


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_sigterm_stops_a_two_process_predict_and_leaves_no_process(ddp_run: Path, tmp_path: Path):
    """SIGTERM to the command (process 0, as `kill PID` sends it) while both processes predict."""
    started = tmp_path / "started"
    args = default_run_args(ddp_run / "data", *DDP, "--ckpt_path", "last", "--data.batch_size", "2",
                            "--submission.path", str(tmp_path / "submission.csv"),  # 13 batches of 1 s each
                            "--trainer.callbacks+=signal_at.SlowPredictBatches", "--trainer.callbacks.started",
                            str(started))
    process = start_ddp(ddp_run, "predict", *args)
    try:
        wait_for(started, process)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 60 s after SIGTERM") from None
        assert process.returncode == 143, (out + err)[-3000:]
        assert time.monotonic() - signalled < 60
        assert not group_survivors(process.pid), "a process of the run outlived it"
        assert "Traceback" not in err and not (tmp_path / "submission.csv").exists()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


@pytest.mark.slow
def test_sigterm_stops_a_two_process_fit_and_leaves_no_process(tmp_path: Path):
    """SIGTERM to the command (process 0) once both processes train: it saves last.ckpt to resume."""
    write_tiny_data(tmp_path)
    process = start_ddp(tmp_path, "fit", *default_run_args(tmp_path / "data", *DDP, "--trainer.max_epochs", "1000"))
    try:
        wait_for(tmp_path / RUN / "checkpoints" / "last.ckpt", process)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 60 s after SIGTERM") from None
        assert process.returncode == 143, (out + err)[-3000:]
        assert time.monotonic() - signalled < 60
        assert not group_survivors(process.pid), "a process of the run outlived it"
        assert "Traceback" not in err, err[-3000:]
        assert "continue with --ckpt_path last" in out + err
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


@pytest.mark.slow
def test_processes_that_wait_for_each_other_in_vain_end_with_one_line(ddp_run: Path):
    """Process 0 broadcasts while process 1 waits at a barrier: with a 60 s collective timeout the
    run ends within about 2 minutes, exit 1, one line instead of a traceback, no process left."""
    args = default_run_args(ddp_run / "data", *DDP, "--ckpt_path", "last",
                            "--trainer.callbacks+=probes.MismatchedCollective")
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


def fit_and_load_last(tmp_path: Path, tiny_data: Path, *extra: str, env: dict | None = None) -> dict:
    run_cli("fit", *tiny_run_args(tiny_data, *extra), cwd=tmp_path, env=env)
    return torch.load(next((tmp_path / "lightning_logs").rglob("last.ckpt")), map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_bf16_mixed_precision_trains_on_cpu(tmp_path: Path, tiny_data: Path):
    record = tmp_path / "autocast.json"
    state = fit_and_load_last(tmp_path, tiny_data, "--trainer.precision", "bf16-mixed",
                              "--trainer.callbacks+=probes.RecordAutocast", "--trainer.callbacks.record", str(record),
                              env=TESTS_ON_PATH)
    # every training forward pass ran under CPU autocast to bfloat16, and the logits came out in it
    assert json.loads(record.read_text()) == [{"logits": "torch.bfloat16", "autocast": True,
                                               "autocast_dtype": "torch.bfloat16"}]
    weights = state["state_dict"]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in weights.values())
    assert state["global_step"] == 3


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@GPU
@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    ["--trainer.precision", "16-mixed"],
    ["--trainer.precision", "bf16-mixed", "--model.channels_last", "true"],
    ["--model.compile", "reduce-overhead", "--trainer.benchmark", "true"],
], ids=["16-mixed", "bf16-mixed-channels-last", "compile-cuda-graphs"])
def test_trains_on_a_gpu(tmp_path: Path, tiny_data: Path, extra: list[str]):
    state = fit_and_load_last(tmp_path, tiny_data, "--trainer.accelerator", "gpu", *extra)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state["state_dict"].values())
    assert state["global_step"] == 3
    assert state["state_dict"].keys() == DigitClassifier().state_dict().keys()


def test_channels_last_changes_the_layout_not_the_function():
    plain = DigitClassifier().eval()
    nhwc = DigitClassifier(channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    weight = nhwc.network.features[0][2].weight  # 32 -> 32 channels (with one, both layouts coincide)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    images = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(nhwc(images), plain(images))


def test_compile_keeps_the_checkpoint_keys():
    """The real torch.compile (it compiles lazily, at the first call): wrapping the network as
    `torch.compile(network)` would prefix every key with `_orig_mod.` and fail this test."""
    compiled = DigitClassifier(compile="reduce-overhead")
    assert compiled.network._compiled_call_impl is not None, "the network is compiled in place"
    assert compiled.state_dict().keys() == DigitClassifier().state_dict().keys()
