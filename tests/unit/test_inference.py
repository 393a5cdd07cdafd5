"""Ensembles and test-time shifts: zero-padded shifts, probability averages, checkpoint checks."""

import torch
from torch import nn

from digit_recognizer.inference import AveragedNetworks, load_network, shifted_views
from digit_recognizer.errors import CheckpointError
from digit_recognizer.models import DigitCNN

from helpers.errors import raises_one_line
from helpers.networks import Constant


def test_shifts_move_pixels_and_fill_with_zeros():
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 5, 5] = 1.0   # (row 5, column 5)
    images[1, 0, 3, 27] = 1.0  # on the right border
    views = shifted_views(images, [(0, 0), (1, 2), (1, 0)])
    assert views.shape == (6, 1, 28, 28)
    assert torch.equal(views[:2], images)
    assert views[2, 0, 7, 6] == 1 and views[2].sum() == 1, "dx=1 moves right, dy=2 moves down"
    assert views[5].sum() == 0, "a pixel pushed over the border is gone, not wrapped round to column 0"


def test_the_average_is_the_mean_probability_of_the_networks():
    a, b = Constant([2.0, 0.0, 0.0]), Constant([0.0, 0.0, 3.0])
    images = torch.rand(4, 1, 28, 28)
    logits = AveragedNetworks([a, b])(images)
    expected = (a(images).softmax(1) + b(images).softmax(1)) / 2
    torch.testing.assert_close(logits.softmax(1), expected)
    torch.testing.assert_close(logits.exp(), expected)


def test_the_average_over_shifts_is_the_mean_over_the_shifted_images():
    network = DigitCNN().eval()
    images = torch.rand(3, 1, 28, 28)
    shifts = [(1, 0), (0, -2)]
    with torch.no_grad():
        averaged = AveragedNetworks([network], shifts)(images).exp()
        one_by_one = torch.stack([network(shifted_views(images, [s])).softmax(1) for s in [(0, 0), *shifts]]).mean(0)
    torch.testing.assert_close(averaged, one_by_one)


def save_checkpoint(path, network: nn.Module) -> None:
    torch.save({"state_dict": {f"network.{k}": v for k, v in network.state_dict().items()}}, path)


def test_a_checkpoint_of_the_same_network_loads_its_weights(tmp_path):
    trained = DigitCNN()
    save_checkpoint(tmp_path / "a.ckpt", trained)
    loaded = load_network(tmp_path / "a.ckpt", like=DigitCNN())
    assert all(torch.equal(x, y) for x, y in zip(loaded.state_dict().values(), trained.state_dict().values()))


def test_a_checkpoint_of_another_network_is_a_one_line_error(tmp_path):
    save_checkpoint(tmp_path / "other.ckpt", nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    with raises_one_line(CheckpointError, match=r"other.ckpt: not the same network") as error:
        load_network(tmp_path / "other.ckpt", like=DigitCNN())
    assert "\n" not in str(error.value)
    torch.save({"epoch": 3}, tmp_path / "bare.ckpt")
    with raises_one_line(CheckpointError, match="bare.ckpt: not a Lightning checkpoint"):
        load_network(tmp_path / "bare.ckpt", like=DigitCNN())
    with raises_one_line(CheckpointError, match="missing.ckpt: checkpoint file not found"):
        load_network(tmp_path / "missing.ckpt", like=DigitCNN())
