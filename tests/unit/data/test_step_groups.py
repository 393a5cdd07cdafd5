"""data.steps_per_batch: a step group prepares each step when it is reached, and bad settings are
one line (whole runs, bit-identical to one step a batch: tests/e2e/test_step_groups.py)."""

from __future__ import annotations

import torch

from digit_recognizer.data.step_groups import StepGroup
from digit_recognizer.errors import DataError, UserError

from helpers.errors import raises_one_line
from helpers.step_groups import train


def test_step_group_prepares_each_step_when_reached():
    images = torch.arange(10 * 28 * 28, dtype=torch.float32).reshape(10, 28, 28)
    labels, rows = torch.arange(10), torch.arange(10) + 100
    prepared = []

    def prepare(batch):
        prepared.append(len(batch[0]))
        return batch

    group = StepGroup([images, labels, rows], 4, prepare)
    assert len(group) == 3 and len(group[0]) == 10 and group.num_steps == 3  # a batch to everyone else
    steps = group.steps()
    assert prepared == []
    first = next(steps)
    assert prepared == [4] and torch.equal(first[1], labels[:4])
    assert [len(batch[2]) for batch in steps] == [4, 2] and prepared == [4, 4, 2]


def test_bad_steps_per_batch_is_one_line(data_dir, tmp_path):
    with raises_one_line(DataError, "data.steps_per_batch must be at least 1, got 0"):
        train(data_dir, tmp_path, 0)


def test_other_weight_averaging_needs_one_step_a_batch(data_dir, tmp_path):
    with raises_one_line(UserError, "EMAWeightAveraging averages the weights once per training batch"):
        train(data_dir, tmp_path, 2, "--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
              recipe="quick.yaml")
