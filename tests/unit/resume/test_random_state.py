"""RandomStateCheckpoint: the random states survive a checkpoint round trip."""

from __future__ import annotations

import random

import numpy as np
import torch

from digit_recognizer.resume import RandomStateCheckpoint


def test_random_states_survive_a_checkpoint_round_trip(tmp_path):
    def draws() -> tuple:
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    torch.save(RandomStateCheckpoint().state_dict(), tmp_path / "state.pt")
    expected = draws()
    draws()  # move every generator on
    restored = RandomStateCheckpoint()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    restored.on_train_start(None, None)
    assert draws() == expected
