"""Exported ONNX and TorchScript files give the network's probabilities for any batch size."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import Tensor, nn

from digit_recognizer.inference import AveragedNetworks
from digit_recognizer.errors import DataError, UserError
from digit_recognizer.export import data_checksum, export_onnx, export_torchscript, model_card, write_model_card
from digit_recognizer.models import DigitCNN

from helpers.errors import raises_one_line


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

BATCH_SIZES = (1, 7)
TOLERANCE = 1e-5


def digit_cnn(seed: int) -> DigitCNN:
    torch.manual_seed(seed)
    network = DigitCNN()
    with torch.no_grad():  # Keras' init leaves biases at zero: random ones test that they are exported
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.bias.uniform_(-0.1, 0.1)
    return network


def networks() -> dict[str, tuple[nn.Module, Callable[[Tensor], Tensor]]]:
    """Each case: the network to export and its probabilities in torch (eval mode)."""
    single = digit_cnn(0)
    averaged = AveragedNetworks([digit_cnn(1), digit_cnn(2)], shifts=[[1, 0], [-1, 0]])
    return {
        "DigitCNN": (single, lambda x: single.eval()(x).softmax(dim=1)),
        "AveragedNetworks": (averaged, lambda x: averaged.eval()(x).exp()),
    }


def images(batch: int, seed: int = 1) -> Tensor:
    return torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed + batch))


@pytest.mark.parametrize("name", ["DigitCNN", "AveragedNetworks"])
def test_onnx_gives_torchs_probabilities_for_every_batch_size(name: str, tmp_path: Path):
    network, probabilities = networks()[name]
    network.train()  # export must use eval mode (no dropout) and give the network back as it was
    path = export_onnx(network, tmp_path / "model.onnx")
    assert network.training, "the caller's network keeps its mode"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "images" and graph_output.name == "probabilities"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch", "the batch size must be dynamic"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in BATCH_SIZES:
        x = images(batch)
        (got,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = probabilities(x).numpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - expected).max() <= TOLERANCE, (batch, np.abs(got - expected).max())
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"], "no temporary file may be left behind"


def test_onnx_opset_is_the_one_asked_for(tmp_path: Path):
    path = export_onnx(digit_cnn(0), tmp_path / "model.onnx", opset=17)
    assert {entry.version for entry in onnx.load(str(path)).opset_import if entry.domain in ("", "ai.onnx")} == {17}


@pytest.mark.parametrize("name", ["DigitCNN", "AveragedNetworks"])
def test_torchscript_gives_torchs_probabilities_for_every_batch_size(name: str, tmp_path: Path):
    network, probabilities = networks()[name]
    path = export_torchscript(network, tmp_path / "model.pt")
    loaded = torch.jit.load(str(path))
    for batch in BATCH_SIZES:
        x = images(batch)
        with torch.no_grad():
            difference = (loaded(x) - probabilities(x)).abs().max().item()
        assert difference <= TOLERANCE, (batch, difference)


class FixedBatch(nn.Module):
    """A network whose reshape bakes the traced batch size into the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, images: Tensor) -> Tensor:
        return self.linear(images.reshape(len(images), -1))


@pytest.mark.filterwarnings("ignore:Using len to get tensor shape")
@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_a_network_that_fixes_its_batch_size_is_refused_and_nothing_is_written(export, tmp_path: Path):
    with raises_one_line(UserError, match="fixes its batch size"):
        export(FixedBatch(), tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_the_model_card_says_what_goes_in_and_out_and_where_it_came_from(tmp_path: Path):
    csv = tmp_path / "train.csv"
    csv.write_bytes(b"label,pixel0\n1,0\n")
    checksum = data_checksum(csv)
    assert checksum == hashlib.sha256(b"label,pixel0\n1,0\n").hexdigest()
    recipe = {"model": {"lr": 0.001}, "data": {"batch_size": 86}, "path": Path("x")}
    path = write_model_card(tmp_path / "model.json", recipe=recipe, val_accuracy=0.9952, data_checksum=checksum,
                            source_checkpoint="lightning_logs/version_0/checkpoints/best.ckpt", fmt="onnx")
    card = json.loads(path.read_text())
    assert card["format"] == "onnx"
    assert card["input"]["name"] == "images" and card["input"]["per_image_shape"] == [1, 28, 28]
    assert card["input"]["dtype"] == "float32" and card["input"]["range"] == [0.0, 1.0]
    assert "white digit on black" in card["input"]["polarity"]
    assert card["output"]["name"] == "probabilities" and card["output"]["shape"] == ["batch", 10]
    assert card["val_accuracy"] == 0.9952
    assert card["data_checksum"] == {"algorithm": "sha256", "value": checksum}
    assert card["source_checkpoint"].endswith("best.ckpt")
    assert card["recipe"] == {"model": {"lr": 0.001}, "data": {"batch_size": 86}, "path": "x"}
    assert {"digit_recognizer", "torch"} <= set(card["exported_with"]) and card["exported_at"]
    unknown = model_card(recipe={}, val_accuracy=None, data_checksum=None, source_checkpoint="c", fmt="torchscript")
    assert unknown["val_accuracy"] is None and unknown["data_checksum"] is None
    with raises_one_line(UserError, match="unknown export format 'tflite'"):
        model_card(recipe={}, val_accuracy=None, data_checksum=None, source_checkpoint="c", fmt="tflite")


def test_the_checksum_of_a_missing_file_is_a_data_error_naming_it(tmp_path: Path):
    with raises_one_line(DataError, match="missing.csv: cannot read"):
        data_checksum(tmp_path / "missing.csv")
