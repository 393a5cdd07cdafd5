"""Networks as plain nn.Modules: (B, 1, 28, 28) floats in [0, 1] in, (B, 10) logits out.

A recipe picks one by `class_path` under `model.network`; none of them knows Lightning.
"""

from digit_recognizer.models.digit_cnn import DigitCNN
from digit_recognizer.models.strong import DeotteCNN

__all__ = ["DeotteCNN", "DigitCNN"]
