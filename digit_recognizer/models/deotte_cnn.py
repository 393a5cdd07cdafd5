"""DeotteCNN: one member of Chris Deotte's Kaggle ensemble "25 Million Images! [0.99757] MNIST" (2018).

https://www.kaggle.com/code/cdeotte/25-million-images-0-99757-mnist — the network each of his
15 ensemble members uses, translated from Keras layer for layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from digit_recognizer.constants import NUM_CLASSES
from digit_recognizer.models.keras_init import keras_init


def _conv_relu_bn(
    in_channels: int, channels: int, kernel_size: int, stride: int = 1, padding: tuple[int, int, int, int] | None = None
) -> list[nn.Module]:
    """Keras' Conv2D(..., activation='relu') then BatchNormalization(): ReLU before BN, as in the kernel.

    `padding` (left, right, top, bottom) reproduces Keras' 'same' for a strided convolution, which
    puts the odd extra zero on the right and bottom; None is Keras' 'valid' (no padding).
    BN keeps Keras' defaults: epsilon 1e-3, and momentum 0.99 of the old statistics (PyTorch's 0.01).
    """
    layers: list[nn.Module] = [] if padding is None else [nn.ZeroPad2d(padding)]
    layers += [
        nn.Conv2d(in_channels, channels, kernel_size, stride=stride),
        nn.ReLU(),
        nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01),
    ]
    return layers


# Keras 'same' with stride 2 and a 5x5 kernel on an even input (24 or 8 pixels): 3 zeros in all, 1 before, 2 after.
_SAME_5X5_STRIDE_2 = (1, 2, 1, 2)


class DeotteCNN(nn.Module):
    """Chris Deotte's MNIST network: two blocks of Conv3x3-Conv3x3-Conv5x5/2, a Conv4x4, Dense 10.

    Source: C. Deotte, "25 Million Images! [0.99757] MNIST", Kaggle kernel (2018), where an
    ensemble of 15 of these, trained on augmented images, scored 0.99757 on the leaderboard
    (an ensemble's score, not one network's). Each network, with w = `width`:

        Conv w 3x3 - BN - Conv w 3x3 - BN - Conv w 5x5 stride 2 'same' - BN - Dropout     28 -> 26 -> 24 -> 12
        Conv 2w 3x3 - BN - Conv 2w 3x3 - BN - Conv 2w 5x5 stride 2 'same' - BN - Dropout  12 -> 10 -> 8 -> 4
        Conv 4w 4x4 - BN - Flatten - Dropout - Dense 10                                    4 -> 1

    with a ReLU after every convolution (before its BN, as Keras' `activation='relu'` puts it),
    no pooling and no hidden dense layer. The penultimate features are the 4w = 128 values that
    feed the last nn.Linear, so a forward hook on `self.classifier[-1]` receives the embedding.

    At the default width 32 (Deotte's): 326,410 trainable parameters (Keras reports 327,242,
    counting BN's 832 moving statistics, which here are buffers), and 15.16 M multiply-adds
    (30.3 MFLOPs) per image in the convolutions and the dense layer — fewer than DigitCNN's
    887,530 parameters and 32.3 M multiply-adds (64.7 MFLOPs). On one CPU thread a training step
    at batch 86 (Adam) takes about 0.7x DigitCNN's time, well inside the 2x budget, so the design
    is kept at full width; docs/strong-network.md has the measurements.

    Weights start as in Keras (Glorot-uniform, zero biases). Returns logits: Deotte's softmax is
    left to the loss.
    """

    def __init__(self, dropout: float = 0.4, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_relu_bn(1, w, 3),
            *_conv_relu_bn(w, w, 3),
            *_conv_relu_bn(w, w, 5, stride=2, padding=_SAME_5X5_STRIDE_2),
            nn.Dropout(dropout),
            *_conv_relu_bn(w, 2 * w, 3),
            *_conv_relu_bn(2 * w, 2 * w, 3),
            *_conv_relu_bn(2 * w, 2 * w, 5, stride=2, padding=_SAME_5X5_STRIDE_2),
            nn.Dropout(dropout),
            *_conv_relu_bn(2 * w, 4 * w, 4),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(4 * w, NUM_CLASSES),
        )
        self.apply(keras_init)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 1, 28, 28) floats in [0, 1] -> (B, 10) logits."""
        return self.classifier(self.features(images))
