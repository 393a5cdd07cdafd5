"""Inference: class probabilities averaged over several networks and shifted copies of each image.

Networks trained with different seeds (what the `ensemble` command trains) and test-time shifts
(the image moved by a pixel or two) both average probabilities; here one batch of every shifted
copy goes through each network at once, on the device, with no per-image Python.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from digit_recognizer.checkpoints import network_settings, read_checkpoint
from digit_recognizer.errors import CheckpointError
from digit_recognizer.models import build_network
from digit_recognizer.names import NETWORK

Shift = tuple[int, int]  # (dx, dy) in pixels: +dx moves the digit right, +dy down


def shifted_views(images: Tensor, shifts: Sequence[Shift]) -> Tensor:
    """(B, C, H, W) -> (len(shifts) * B, C, H, W): each shift of the whole batch, in order.

    Pixels moved in from outside the image are zero (background), never wrapped round from the
    opposite border as torch.roll would.
    """
    margin = max(max(abs(dx), abs(dy)) for dx, dy in shifts)
    height, width = images.shape[-2:]
    padded = F.pad(images, (margin, margin, margin, margin))
    return torch.cat([padded[..., margin - dy : margin - dy + height, margin - dx : margin - dx + width]
                      for dx, dy in shifts])


class AveragedNetworks(nn.Module):
    """Each network on the image and each shifted copy; returns the log of the mean probability.

    Log-probabilities are valid logits: softmax gives back the mean probability, cross-entropy is
    the ensemble's negative log-likelihood and argmax its prediction, so a LightningModule can use
    this in place of its network unchanged.
    """

    def __init__(self, networks: Sequence[nn.Module], shifts: Sequence[Shift] = ()) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.shifts: list[Shift] = [(0, 0), *(tuple(s) for s in shifts if tuple(s) != (0, 0))]

    def forward(self, images: Tensor) -> Tensor:
        views = shifted_views(images, self.shifts) if len(self.shifts) > 1 else images
        probabilities = torch.stack([network(views).float().softmax(dim=-1) for network in self.networks]).mean(0)
        # -1, not len(images): a traced export (digit_recognizer.export) keeps the batch size free.
        probabilities = probabilities.unflatten(0, (len(self.shifts), -1)).mean(0)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()


def describe_averaging(shifts: Sequence[Shift], networks: int) -> str:
    """'averaging 5 views (the image and its shifts [1, 0] [-1, 0] ...) of 1 network', for the log."""
    views = [tuple(shift) for shift in shifts if tuple(shift) != (0, 0)]
    seen = f"{1 + len(views)} views (the image and its shifts {' '.join(str(list(s)) for s in views)})" if views \
        else "1 view (the image alone)"
    return f"averaging {seen} of {networks} network{'s' if networks != 1 else ''}"


def load_network(path: str | Path, like: nn.Module, prefix: str = f"{NETWORK}.",
                 checkpoint: dict[str, Any] | None = None) -> nn.Module:
    """A copy of `like` with the weights under `prefix` in the Lightning checkpoint at `path`.

    A checkpoint of another network (other layers or sizes) is a CheckpointError, not a silent
    partial load. `checkpoint`: the file's contents when the caller has already read them.
    """
    state = checkpoint if checkpoint is not None else read_checkpoint(path)
    weights = {key.removeprefix(prefix): value for key, value in state["state_dict"].items() if key.startswith(prefix)}
    network = copy.deepcopy(like)
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
        raise CheckpointError(f"{path}: not the same network as the other checkpoints "
                              f"({textwrap.shorten(details[0], 160)})") from None
    return network


def network_from_checkpoint(path: str | Path, checkpoint: dict[str, Any] | None = None) -> nn.Module:
    """The trained network a checkpoint holds, built from the class and arguments it records, in eval mode."""
    checkpoint = checkpoint if checkpoint is not None else read_checkpoint(path)
    like = build_network(network_settings(path, checkpoint))
    return load_network(path, like=like, checkpoint=checkpoint).eval()
