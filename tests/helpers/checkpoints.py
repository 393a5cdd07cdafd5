"""Checkpoint files made by hand: of this model, of a wider one, of a bare network with its split."""

from __future__ import annotations

from pathlib import Path

import torch

from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.models import DigitCNN


def save_checkpoint(path: Path, state_dict: dict) -> Path:
    torch.save({"epoch": 0, "global_step": 1, "state_dict": state_dict}, path)
    return path


def wider_state_dict() -> tuple[dict, str]:
    state = dict(DigitClassifier().state_dict())
    name = next(key for key in state if key.endswith("weight"))
    state[name] = torch.zeros(7, *state[name].shape[1:])
    return state, name


def save_network_checkpoint(path: Path, seed: int, val_fraction: float = 0.1, split_seed: int = 42) -> DigitCNN:
    """A checkpoint as the package writes it, as far as the script reads it: weights and the split."""
    torch.manual_seed(seed)
    network = DigitCNN()
    torch.save({"state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
                "datamodule_hyper_parameters": {"val_fraction": val_fraction, "split_seed": split_seed}}, path)
    return network.eval()
