"""data.steps_per_batch: K optimizer steps per Lightning batch train exactly as one step a batch.

The runs below use the shipped recipes on tiny data (180 training images in batches of 32: six
steps an epoch, the last of 20 images), with K that divides the epoch's steps and K that does not,
so that the last group of an epoch holds fewer steps; the plateau scheduler (patience 0) and the
one-cycle schedule act within the runs.
"""

from __future__ import annotations

import pytest
import torch

from digit_recognizer.cli import DigitCLI

from helpers.step_groups import train


PLATEAU_ACTS = ["--model.scheduler.init_args.patience", "0"]
ONE_CYCLE = ["--model.scheduler.class_path", "torch.optim.lr_scheduler.OneCycleLR",
             "--model.scheduler.init_args.max_lr", "0.002", "--model.scheduler.init_args.total_steps", "null",
             "--model.scheduler_interval", "step"]


def state(cli: DigitCLI) -> dict:
    trainer = cli.trainer
    return {
        "global_step": trainer.global_step,
        "weights": {k: v.clone() for k, v in cli.model.state_dict().items()},
        "optimizer": trainer.optimizers[0].state_dict(),
        "schedulers": [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs],
        "train/loss": float(trainer.callback_metrics["train/loss"]),
    }


def assert_same_training(expected: dict, got: dict) -> None:
    assert got["global_step"] == expected["global_step"]
    for name, tensor in expected["weights"].items():
        assert torch.equal(tensor, got["weights"][name]), f"{name} differs"
    torch.testing.assert_close(got["optimizer"], expected["optimizer"], rtol=0, atol=0)
    assert got["schedulers"] == expected["schedulers"]
    assert got["train/loss"] == pytest.approx(expected["train/loss"], rel=1e-6)


@pytest.mark.parametrize("recipe, extra, steps_per_batch", [
    ("cnn.yaml", PLATEAU_ACTS, 3),     # dropout, augmentation, the plateau scheduler acting; 3 divides 6
    ("cnn.yaml", PLATEAU_ACTS, 4),     # groups of 4 and 2 steps
    ("quick.yaml", ONE_CYCLE, 5),      # a step-interval schedule sized to the run's optimizer steps
], ids=["cnn-k3", "cnn-k4", "one-cycle-k5"])
def test_k_steps_a_batch_train_bit_identically_to_one(data_dir, tmp_path, recipe, extra, steps_per_batch):
    one = state(train(data_dir, tmp_path / "one", 1, *extra, recipe=recipe))
    grouped_cli = train(data_dir, tmp_path / "grouped", steps_per_batch, *extra, recipe=recipe)
    assert not grouped_cli.model.automatic_optimization
    assert grouped_cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3 * -(-6 // steps_per_batch)
    assert_same_training(one, state(grouped_cli))
    scheduler = grouped_cli.trainer.lr_scheduler_configs[0].scheduler
    if recipe == "cnn.yaml":
        assert scheduler.last_epoch == 3 and scheduler.get_last_lr()[0] < 1e-3, "the plateau must act in the run"
    else:
        assert scheduler.total_steps == 18 == scheduler.last_epoch, "the cycle spans the run's optimizer steps"


def test_max_steps_counts_optimizer_steps(data_dir, tmp_path):
    cli = train(data_dir, tmp_path, 4, "--trainer.max_steps", "7", "--trainer.max_epochs", "5")
    assert cli.trainer.global_step == 7


def test_swa_averages_every_step_of_a_batch(data_dir, tmp_path):
    """best.yaml (SWA over the second half of the run, one-cycle schedule): the average is the same."""
    one = train(data_dir, tmp_path / "one", 1, recipe="best.yaml", epochs=4)
    grouped = train(data_dir, tmp_path / "grouped", 4, recipe="best.yaml", epochs=4)
    averaged = [c for c in grouped.trainer.callbacks if type(c).__name__ == "SWAWeightAveraging"][0]
    assert int(averaged._average_model.n_averaged) == 14, "every step of epochs 2 and 3 (200 images: 7 steps an epoch)"
    assert_same_training(state(one), state(grouped))  # the module holds the average after fit
