"""check_checkpoint: a bad checkpoint is one clear line naming the file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from digit_recognizer.checkpoints import check_checkpoint
from digit_recognizer.errors import CheckpointError
from digit_recognizer.classifier import DigitClassifier

from helpers.checkpoints import save_checkpoint, wider_state_dict
from helpers.errors import raises_one_line


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return DigitClassifier()


def test_a_checkpoint_of_this_model_passes(tmp_path, model):
    check_checkpoint(save_checkpoint(tmp_path / "ok.ckpt", model.state_dict()), model)


def test_truncated_checkpoint(tmp_path, model):
    path = save_checkpoint(tmp_path / "cut.ckpt", model.state_dict())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with raises_one_line(CheckpointError, match=r"cut.ckpt: truncated or not a checkpoint file \(.+\)$"):
        check_checkpoint(path, model)


def test_not_a_lightning_checkpoint(tmp_path, model):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with raises_one_line(CheckpointError, match="plain.pt: not a Lightning checkpoint") as error:
        check_checkpoint(tmp_path / "plain.pt", model)
    assert "\n" not in str(error.value)


def test_checkpoint_of_another_model(tmp_path, model):
    path = save_checkpoint(tmp_path / "other.ckpt", nn.Linear(784, 10).state_dict())
    with raises_one_line(CheckpointError, match=r"other.ckpt: a checkpoint of a different model \(\d+ weights missing") as error:
        check_checkpoint(path, model)
    assert "\n" not in str(error.value), "one line, not Lightning's list of every weight"


def test_checkpoint_of_another_architecture(tmp_path, model):
    state, name = wider_state_dict()  # another layer width
    path = save_checkpoint(tmp_path / "wide.ckpt", state)
    with raises_one_line(CheckpointError, match=rf"different architecture \('{name}' has shape \(7, ") as error:
        check_checkpoint(path, model)
    assert "\n" not in str(error.value)
