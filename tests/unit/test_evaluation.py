"""Scoring checkpoints on their recorded split (digit_recognizer.evaluation) and out-of-fold summaries."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from digit_recognizer import evaluation
from digit_recognizer.evaluation import out_of_fold_summary

from helpers.checkpoints import save_network_checkpoint
from helpers.errors import raises_one_line


def test_shared_mistake_counts_counts_networks_per_wrong_image():
    labels = torch.tensor([0, 1, 2, 3, 4])
    predictions = torch.tensor([
        [0, 7, 2, 8, 4],  # wrong on images 1 and 3
        [0, 7, 2, 3, 4],  # wrong on image 1
        [9, 7, 2, 3, 4],  # wrong on images 0 and 1
    ])
    # image 1: all three networks; images 0 and 3: one network each; images 2 and 4: none
    assert evaluation.shared_mistake_counts(predictions, labels) == {3: 1, 1: 2}


def test_seed_accuracy_summary_judges_the_mean_against_the_goal():
    assert evaluation.seeds_summary([4186, 4184, 4182], 4200, 0.996) == \
        "4,186 / 4,184 / 4,182 correct: 0.99619 ± 0.00048, goal met"
    assert evaluation.seeds_summary([4184, 4179, 4179], 4200, 0.996).endswith(
        "0.99540 ± 0.00069, goal not met (2.5 images short on average)")


def test_a_network_without_held_out_rows_is_refused(tiny_data, tmp_path):
    save_network_checkpoint(tmp_path / "all.ckpt", 1, val_fraction=0.0)
    with raises_one_line(evaluation.UserError, match="all.ckpt: trained on every row .val_fraction 0., so no rows are held out"):
        evaluation.load_networks([str(tmp_path / "all.ckpt")], str(tiny_data))


def test_out_of_fold_summary_counts_every_row():
    frame = pd.DataFrame({"label": [1, 2, 3, 4], "predicted": [1, 2, 0, 4], "fold": [0, 0, 1, 1]})
    summary = out_of_fold_summary(frame)
    assert summary["correct"] == 3 and summary["accuracy"] == 0.75
    assert summary["standard_error"] == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    assert [f["accuracy"] for f in summary["folds"]] == [1.0, 0.5]
