"""The projector embedding: penultimate features of a network or an ensemble, written capped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.projector import penultimate_features, write_embedding
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.inference import AveragedNetworks
from digit_recognizer.models import DigitCNN

from helpers.data import random_digits
from helpers.events import read_tsv


def dense_activations(network: DigitCNN, images: torch.Tensor) -> torch.Tensor:
    """DigitCNN's 256 activations before its output layer, by hand."""
    with torch.no_grad():
        return network.classifier[:-1](network.features(images))


def test_write_embedding_takes_csv_images_caps_them_and_restores_the_network(tmp_path: Path):
    torch.manual_seed(0)
    network = DigitCNN().train()
    images, labels = random_digits(8)
    with SummaryWriter(tmp_path) as writer:
        assert write_embedding(writer, network, images, labels, max_images=5, global_step=12, tag="mine") == 5
    assert network.training and all(module.training for module in network.modules())
    folder = tmp_path / "00012" / "mine"
    features = np.array(read_tsv(folder / "tensors.tsv"), dtype=np.float32)
    expected = dense_activations(network.eval(), to_model_input(images[:5]))
    assert np.allclose(features, expected.numpy(), atol=1e-5)
    assert [row[0] for row in read_tsv(folder / "metadata.tsv")[1:]] == [str(v) for v in labels[:5].tolist()]


def test_an_ensemble_shows_its_last_networks_features_of_the_unshifted_images():
    torch.manual_seed(0)
    first, last = DigitCNN(), DigitCNN()
    images = to_model_input(random_digits(6)[0])
    features, predicted = penultimate_features(AveragedNetworks([first, last], shifts=[[1, 0], [0, 1]]), images,
                                               batch_size=4)
    assert torch.allclose(features, dense_activations(last.eval(), images), atol=1e-6)
    with torch.no_grad():
        ensemble = AveragedNetworks([first, last], shifts=[[1, 0], [0, 1]]).eval()
        assert predicted.tolist() == ensemble(images).argmax(dim=1).tolist()


def test_a_network_without_a_linear_layer_is_a_value_error():
    with pytest.raises(ValueError, match="no nn.Linear"):
        penultimate_features(nn.Sequential(nn.Flatten()), torch.zeros(2, 1, 28, 28))
