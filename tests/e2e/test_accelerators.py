"""Training on other number formats and devices: bf16 on the CPU, and on a GPU where there is one."""

import json
from pathlib import Path

import pytest
import torch

from digit_recognizer.classifier import DigitClassifier

from helpers.cli import TESTS_ON_PATH, run_cli, tiny_run_args


def fit_and_load_last(tmp_path: Path, tiny_data: Path, *extra: str, env: dict | None = None) -> dict:
    run_cli("fit", *tiny_run_args(tiny_data, *extra), cwd=tmp_path, env=env)
    return torch.load(next((tmp_path / "lightning_logs").rglob("last.ckpt")), map_location="cpu", weights_only=False)


def test_bf16_mixed_precision_trains_on_cpu(tmp_path: Path, tiny_data: Path):
    record = tmp_path / "autocast.json"
    state = fit_and_load_last(tmp_path, tiny_data, "--trainer.precision", "bf16-mixed",
                              "--trainer.callbacks+=helpers.probes.RecordAutocast", "--trainer.callbacks.record", str(record),
                              env=TESTS_ON_PATH)
    # every training forward pass ran under CPU autocast to bfloat16, and the logits came out in it
    assert json.loads(record.read_text()) == [{"logits": "torch.bfloat16", "autocast": True,
                                               "autocast_dtype": "torch.bfloat16"}]
    weights = state["state_dict"]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in weights.values())
    assert state["global_step"] == 3


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@GPU
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
