"""Networks as plain nn.Modules: (B, 1, 28, 28) floats in [0, 1] in, (B, 10) logits out.

A recipe picks one by `class_path` under `model.network`; none of them knows Lightning.
"""

import importlib
from typing import Any

from torch import nn

from digit_recognizer.errors import UserError
from digit_recognizer.models.digit_cnn import DigitCNN
from digit_recognizer.models.deotte_cnn import DeotteCNN


def build_network(settings: dict[str, Any]) -> nn.Module:
    """A network from {"class_path": "package.module.Class", "init_args": {...}}, as a config names it."""
    module_name, _, class_name = settings["class_path"].rpartition(".")
    try:
        network_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise UserError(f"no network class {settings['class_path']} (is its package installed?)") from None
    return network_class(**settings.get("init_args", {}))


__all__ = ["build_network", "DeotteCNN", "DigitCNN"]
