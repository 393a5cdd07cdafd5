"""The Projector tab: validation images placed by the network's penultimate-layer activations.

Written by ClassificationInspector at the end of `fit` and by `report` for a run that has none;
each embedding is staged and moved into the run folder whole (`write_embedding_into`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.constants import IMAGE_SIZE, PIXEL_MAX
from digit_recognizer.names import PROJECTOR_CONFIG

EMBEDDING_TAG = "val_embedding"  # the Projector tab's validation images: "val_embedding/epoch_N"
EMBEDDING_HEADER = ["label", "predicted"]


def last_linear(network: nn.Module) -> nn.Linear:
    """The network's output layer: the last nn.Linear it registers (a ValueError if it has none)."""
    layers = [module for module in network.modules() if isinstance(module, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer whose input to show")
    return layers[-1]


@contextmanager
def _evaluating(network: nn.Module) -> Iterator[nn.Module]:
    """The network in eval mode (no dropout), given back in the mode it was in."""
    modes = {module: module.training for module in network.modules()}
    network.eval()
    try:
        yield network
    finally:
        for module, training in modes.items():
            module.training = training


def penultimate_features(network: nn.Module, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(features (N, D), predictions (N,)) on the CPU: the input of the network's last nn.Linear
    (for DigitCNN its 256 dense activations) and the argmax of its output, in eval mode.

    Captured with a forward pre-hook, so any network with an nn.Linear output layer works. For an
    AveragedNetworks that layer is its last network's, and the unshifted images' rows are taken.
    `images`: float (N, 1, 28, 28) in [0, 1].
    """
    captured: list[Tensor] = []
    handle = last_linear(network).register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0]))
    weights = next(network.parameters())  # the images go to its device and dtype (bf16-true runs)
    features, predictions = [], []
    try:
        with _evaluating(network), torch.no_grad():
            for chunk in images.split(batch_size):
                captured.clear()
                # forward itself, not __call__: a network compiled in place would recompile for the hook
                logits = network.forward(chunk.to(weights.device, weights.dtype))
                features.append(captured[-1][: len(chunk)].flatten(1).float().cpu())
                predictions.append(logits.argmax(dim=1).cpu())
    finally:
        handle.remove()
    return torch.cat(features), torch.cat(predictions)


def write_embedding(writer: SummaryWriter, network: nn.Module, images: Tensor, labels: Tensor, max_images: int,
                    *, global_step: int = 0, tag: str = EMBEDDING_TAG) -> int:
    """Put the first `max_images` images into TensorBoard's Projector tab; returns how many.

    Each point is an image's penultimate-layer activations (`penultimate_features`), with its
    metadata ["label", "predicted"] and the image itself as its sprite thumbnail. `images`: uint8
    (N, 28, 28) as the CSVs hold them, or float (N, 1, 28, 28) in [0, 1] as the network takes them.
    The writer saves tensors.tsv, metadata.tsv and sprite.png under
    `LOG_DIR/{global_step:05d}/{tag}/` and lists them in LOG_DIR/projector_config.pbtxt.
    """
    images, labels = images[:max_images], labels[:max_images]
    if images.dtype == torch.uint8:
        images = images.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).float() / PIXEL_MAX
    if not len(images):
        return 0
    features, predicted = penultimate_features(network, images)
    metadata = [[label, prediction] for label, prediction in zip(labels.tolist(), predicted.tolist())]
    writer.add_embedding(features, metadata=metadata, label_img=images.float().cpu(), global_step=global_step,
                         tag=tag, metadata_header=EMBEDDING_HEADER)
    return len(images)


def embedding_name(epoch: int) -> str:
    """The projector's name of the validation embedding after `epoch` epochs, and its folder in the run."""
    return f"{EMBEDDING_TAG}/epoch_{epoch}"


def write_embedding_into(run_dir: Path, network: nn.Module, images: Tensor, labels: Tensor, max_images: int,
                         *, epoch: int) -> int:
    """`write_embedding` into the run folder `run_dir` as `val_embedding/epoch_N` (its folder too),
    whole or not at all; returns how many images.

    TensorBoard's writer puts each file straight into place, so a stop midway (SIGTERM, Ctrl-C at
    the end of `fit` or during `report`) would leave a half-written embedding. It is written into a
    hidden folder of the run instead (removed on any end but `kill -9`), and moved in when complete.
    The writer names an embedding `TAG:STEP` in a folder `STEP/TAG` (`00018/val_embedding`): the
    move renames both after the epoch, which is what a user knows the run by.
    """
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".embedding-") as staging:
        with SummaryWriter(staging) as writer:
            count = write_embedding(writer, network, images, labels, max_images)
        if count:
            _move_embedding(Path(staging), run_dir, embedding_name(epoch))
    return count


def _move_embedding(staging: Path, run_dir: Path, name: str) -> None:
    """Move the finished embedding that `write_embedding` left in `staging` (a SummaryWriter's
    folder, step 0) into `run_dir/NAME`, and list it there as NAME.

    The folder first, in one rename (replacing what an earlier, stopped attempt left: no projector
    config refers to that; older epochs' folders go, as the config lists the newest only), then the
    projector config, also in one rename: the config appears only once everything it lists is in
    place. The writer's event file stays behind: the run's own event files make the run folder a
    TensorBoard run.
    """
    config = text_format.Parse((staging / PROJECTOR_CONFIG).read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    source = staging / Path(embedding.tensor_path).parent
    target = run_dir / name
    for stale in target.parent.glob("*") if target.parent.is_dir() else []:
        if stale.is_dir() and stale != target:
            shutil.rmtree(stale)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(exist_ok=True)
    os.replace(source, target)
    embedding.tensor_name = name
    embedding.tensor_path = f"{name}/{Path(embedding.tensor_path).name}"
    embedding.metadata_path = f"{name}/{Path(embedding.metadata_path).name}"
    embedding.sprite.image_path = f"{name}/{Path(embedding.sprite.image_path).name}"
    (staging / PROJECTOR_CONFIG).write_text(text_format.MessageToString(config))
    os.replace(staging / PROJECTOR_CONFIG, run_dir / PROJECTOR_CONFIG)
