"""The benchmark scripts' own arithmetic (the scripts themselves need the real data and runs)."""

import importlib.util
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shared_mistake_counts_counts_networks_per_wrong_image():
    shared_mistakes = load_script("shared_mistakes")
    labels = torch.tensor([0, 1, 2, 3, 4])
    predictions = torch.tensor([
        [0, 7, 2, 8, 4],  # wrong on images 1 and 3
        [0, 7, 2, 3, 4],  # wrong on image 1
        [9, 7, 2, 3, 4],  # wrong on images 0 and 1
    ])
    # image 1: all three networks; images 0 and 3: one network each; images 2 and 4: none
    assert shared_mistakes.shared_mistake_counts(predictions, labels) == {3: 1, 1: 2}
