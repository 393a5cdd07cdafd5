"""A trained network as a file that runs without this package: ONNX or TorchScript, plus a model card.

The exported graph takes "images", float32 (batch, 1, 28, 28) in [0, 1], white digit on black
(a Kaggle CSV row / 255, or `digit_recognizer.data.images` for a user's own pictures), any batch
size, and returns "probabilities", (batch, 10), each row summing to 1: the softmax is inside the
graph, so a user needs no knowledge of whether the network gave logits or log-probabilities.

    export_onnx(network, Path("model.onnx"))
    write_model_card(Path("model.json"), recipe=config, val_accuracy=0.995,
                     data_checksum=data_checksum(train_csv), source_checkpoint=str(ckpt), fmt="onnx")

An `AveragedNetworks` (seeds and test-time shifts) exports as one graph.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

import digit_recognizer
from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.errors import DataError, UserError
from digit_recognizer.files import atomic_path

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
BATCH_AXIS = "batch"
Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
_TRACE_BATCH = 2  # the example batch the graph is traced with
_CHECK_BATCH = 3  # another size, to prove the exported batch size is not fixed
_CHECK_TOLERANCE = 1e-4


class ProbabilityGraph(nn.Module):
    """What is exported: images -> class probabilities, for a network of logits or log-probabilities."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images).float().softmax(dim=1)


def probability_graph(network: nn.Module) -> ProbabilityGraph:
    """A CPU float32 copy of `network` in eval mode, wrapped to return probabilities; the
    caller's network is left as it was (device, mode, compilation)."""
    exported = copy.deepcopy(network).cpu().float().eval()
    for module in exported.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:  # Module.compile(): trace the eager code
            module._compiled_call_impl = None
    return ProbabilityGraph(exported).eval()


def export_onnx(network: nn.Module, path: Path, opset: int | None = None) -> Path:
    """Write `network` to `path` as ONNX: input "images" (batch, 1, 28, 28), output "probabilities".

    torch's TorchScript-based exporter (dynamo=False): the torch.export-based default needs the
    onnxscript package. `opset`: the ONNX opset, or None for the exporter's default. The file
    is checked to give the network's probabilities for a second batch size before it replaces
    `path`, and written atomically.
    """
    graph = probability_graph(network)
    example = _example(_TRACE_BATCH)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        # shifted_views' slices have runtime-sized ends (the batch is free); the graph is right without folding them
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            graph, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
        )
        _check_batch_is_free(path, graph, _onnx_runner(tmp))
    return path


def export_torchscript(network: nn.Module, path: Path) -> Path:
    """Write `network` to `path` as a traced TorchScript module returning probabilities
    (`torch.jit.load(path)(images)`), checked for a second batch size, written atomically."""
    graph = probability_graph(network)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(trace|load).* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(graph, _example(_TRACE_BATCH))
        traced.save(str(tmp))
        loaded = torch.jit.load(str(tmp))
        _check_batch_is_free(path, graph, lambda images: loaded(images).numpy())
    return path


def _example(batch: int) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator)


def _onnx_runner(path: Path) -> Callable[[Tensor], Any] | None:
    """The ONNX file run by onnxruntime on the CPU, or None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]


def _check_batch_is_free(path: Path, graph: nn.Module, run: Callable[[Tensor], Any] | None) -> None:
    """A network whose code fixes the batch size (len(x) in a reshape) traces into a graph that
    is wrong for other sizes: refuse to write it."""
    if run is None:
        return
    images = _example(_CHECK_BATCH)
    with torch.no_grad():
        expected = graph(images)
    try:
        got = torch.as_tensor(run(images))
    except Exception as exc:  # onnxruntime's shape errors have no common type
        raise UserError(f"{path}: the exported graph fails for a batch of {_CHECK_BATCH} images "
                        f"({str(exc).splitlines()[0]}); this network fixes its batch size") from None
    difference = (got - expected).abs().max().item() if got.shape == expected.shape else float("inf")
    if difference > _CHECK_TOLERANCE:
        raise UserError(f"{path}: the exported graph's probabilities differ from the network's by {difference:.3g} "
                        f"for a batch of {_CHECK_BATCH} images; this network fixes its batch size")


def data_checksum(path: str | Path) -> str:
    """The sha256 of the file's bytes (hex): which training CSV a model came from."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return digest.hexdigest()


def model_card(*, recipe: dict[str, Any], val_accuracy: float | None, data_checksum: str | None,
               source_checkpoint: str, fmt: Format) -> dict[str, Any]:
    """The model card's contents: what goes in and out of the exported file, and where it came from."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {
        "format": fmt,
        "input": {
            "name": INPUT_NAME,
            "shape": [BATCH_AXIS, 1, IMAGE_SIZE, IMAGE_SIZE],
            "per_image_shape": [1, IMAGE_SIZE, IMAGE_SIZE],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white digit on black background",
            "layout": "NCHW; a Kaggle CSV row of 784 pixels reshaped to 28x28 and divided by 255",
            "preparation": "MNIST's: the digit scaled to fit 20x20 (aspect ratio kept) and centred by its "
                           "centre of mass in 28x28 (digit_recognizer.data.images does this for any picture)",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [BATCH_AXIS, NUM_CLASSES],
            "dtype": "float32",
            "meaning": f"probabilities of the digits 0 to {NUM_CLASSES - 1} (each row sums to 1; argmax is the prediction)",
        },
        "source_checkpoint": source_checkpoint,
        "val_accuracy": val_accuracy,
        "data_checksum": None if data_checksum is None else {"algorithm": "sha256", "value": data_checksum},
        "recipe": recipe,
        "exported_with": {"digit_recognizer": digit_recognizer.__version__, "torch": torch.__version__},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_model_card(path: Path, *, recipe: dict[str, Any], val_accuracy: float | None, data_checksum: str | None,
                     source_checkpoint: str, fmt: Format) -> Path:
    """Write `model_card(...)` to `path` as JSON, atomically. `recipe`: the run's configuration
    (JSON-serialisable; anything else is written as its str); `data_checksum`: `data_checksum()`
    of the training CSV."""
    card = model_card(recipe=recipe, val_accuracy=val_accuracy, data_checksum=data_checksum,
                      source_checkpoint=source_checkpoint, fmt=fmt)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return path
