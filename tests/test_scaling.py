"""The data path, DDP on CPU (gloo) and mixed precision, on tiny data."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from digit_recognizer.data.in_memory import DigitTensors, collate_batch
from digit_recognizer.classifier import DigitClassifier

from conftest import run_cli, tiny_run_args


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


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_run_and_one_complete_submission(tmp_path: Path, tiny_data: Path):
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    run_cli("fit", *tiny_run_args(tiny_data, *ddp), cwd=tmp_path, timeout=300)
    runs = list((tmp_path / "lightning_logs").iterdir())
    assert [run.name for run in runs] == ["version_0"], "one set of logs"
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir())[1:] == ["last.ckpt"]

    submission = tmp_path / "submission.csv"
    # 50 test images on 2 processes with batch 32: the second shard is padded with a repeat.
    result = run_cli("predict", *tiny_run_args(tiny_data, *ddp, "--ckpt_path", "last", "--submission.path",
                                              str(submission)), cwd=tmp_path, timeout=300)
    assert result.stdout.count("written to") == 1
    frame = pd.read_csv(submission)
    assert frame["ImageId"].tolist() == list(range(1, 51))


def fit_and_load_last(tmp_path: Path, tiny_data: Path, *extra: str) -> dict:
    run_cli("fit", *tiny_run_args(tiny_data, *extra), cwd=tmp_path)
    return torch.load(next((tmp_path / "lightning_logs").rglob("last.ckpt")), map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_bf16_mixed_precision_trains_on_cpu(tmp_path: Path, tiny_data: Path):
    state = fit_and_load_last(tmp_path, tiny_data, "--trainer.precision", "bf16-mixed")
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
