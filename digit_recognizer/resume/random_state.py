"""RandomStateCheckpoint: a resumed run draws the same random numbers as an uninterrupted one.

Lightning checkpoints hold weights, optimizer and loop state but not the global random number
generators, which the augmentation and dropout draw from. This callback stores them in every
checkpoint and puts them back when training resumes. (The training shuffle has its own generator,
kept in the checkpoint by the DataModule: Lightning creates a resumed run's first loader iterator
before any epoch hook runs.)
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class RandomStateCheckpoint(Callback):
    """Save the torch (CPU and CUDA), numpy and Python random states; restore them on resume.

    The states are captured when a checkpoint is written (at an epoch's end, or where Ctrl-C or
    SIGTERM stopped the run) and restored in `on_train_start`, after the resumed process's model
    summary and sanity check (which could shift them) and before its first batch; unlike
    `on_train_epoch_start`, that hook runs also when the run resumes in mid-epoch.
    """

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self._after_last_batch: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """The states as the next batch starts: Ctrl-C can land after that batch was augmented (its
        random numbers drawn), and the resumed run must draw them again, not skip them."""
        self._after_last_batch = _random_states()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._after_last_batch = _random_states()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """From here the live states are the run's: creating the validation loader's iterator draws
        a seed, and the epoch-end checkpoint must hold the states after that draw."""
        self._after_last_batch = None

    def state_dict(self) -> dict[str, Any]:
        return self._after_last_batch or _random_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._to_restore is not None:
            _set_random_states(self._to_restore)
            self._to_restore = None
        self._after_last_batch = _random_states()


def _random_states() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # Plain tensors and numbers, so that torch.load(weights_only=True) accepts them.
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
    }


def _set_random_states(state_dict: dict[str, Any]) -> None:
    torch.set_rng_state(state_dict["torch"])
    cuda_states = state_dict["torch.cuda"]
    if cuda_states and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    numpy_state = state_dict["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    version, internal, gauss = state_dict["python"]
    random.setstate((version, tuple(internal), gauss))
