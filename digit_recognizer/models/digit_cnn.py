"""DigitCNN: the reference Keras kernel's network, layer for layer (887,530 parameters)."""

from __future__ import annotations

from torch import Tensor, nn

from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.models.keras_init import keras_init


def _conv_block(in_channels: int, channels: int, kernel_size: int, dropout: float) -> nn.Sequential:
    """Two 'same'-padded convolutions with ReLU, 2x2 max-pooling, dropout."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.Conv2d(channels, channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    )


class DigitCNN(nn.Module):
    """Conv(32,5x5)x2 - pool - Conv(64,3x3)x2 - pool - Dense 256 - Dense 10, with dropout.

    A plain nn.Module: it knows nothing of Lightning or of the data's files.
    """

    def __init__(self, conv_dropout: float = 0.25, dense_dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(1, 32, 5, conv_dropout),
            _conv_block(32, 64, 3, conv_dropout),
        )
        flat = 64 * (IMAGE_SIZE // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 256),
            nn.ReLU(),
            nn.Dropout(dense_dropout),
            nn.Linear(256, NUM_CLASSES),
        )
        self.apply(keras_init)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 1, 28, 28) floats in [0, 1] -> (B, 10) logits."""
        return self.classifier(self.features(images))
