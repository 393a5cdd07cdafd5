"""Keras' default initialisation, shared by the networks translated from Keras kernels."""

from __future__ import annotations

from torch import nn


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for Conv2D and Dense, as Keras starts them (its
    BatchNormalization starts at 1 and 0, as PyTorch's does). Use as `network.apply(keras_init)`."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
