"""DigitCNN: the Keras reference's size, shapes, initialisation and dropout."""

import torch
from torch import nn

from digit_recognizer.models import DigitCNN
from digit_recognizer.classifier import DigitClassifier


def test_parameter_count_matches_the_keras_reference():
    model = DigitCNN()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 887_530
    assert sum(p.numel() for p in DigitClassifier().parameters() if p.requires_grad) == 887_530


def test_layer_output_shapes():
    model = DigitCNN().eval()
    shapes = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.Linear)):
            module.register_forward_hook(lambda m, i, out: shapes.append((type(m).__name__, tuple(out.shape[1:]))))
    logits = model(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    assert shapes == [
        ("Conv2d", (32, 28, 28)), ("Conv2d", (32, 28, 28)), ("MaxPool2d", (32, 14, 14)),
        ("Conv2d", (64, 14, 14)), ("Conv2d", (64, 14, 14)), ("MaxPool2d", (64, 7, 7)),
        ("Flatten", (3136,)), ("Linear", (256,)), ("Linear", (10,)),
    ]


def test_keras_initialisation_and_dropout_rates():
    model = DigitCNN()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(module.bias) == 0
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.25, 0.25, 0.5]
