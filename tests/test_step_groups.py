"""data.steps_per_batch: K optimizer steps per Lightning batch train exactly as one step a batch.

The runs below use the shipped recipes on tiny data (180 training images in batches of 32: six
steps an epoch, the last of 20 images), with K that divides the epoch's steps and K that does not,
so that the last group of an epoch holds fewer steps; the plateau scheduler (patience 0) and the
one-cycle schedule act within the runs.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from conftest import RECIPES, raises_one_line, tiny_run_args, write_tiny_data
from digit_recognizer.cli import DigitCLI
from digit_recognizer.data.step_groups import StepGroup
from digit_recognizer.errors import DataError, UserError
from digit_recognizer.signals import CtrlCHold

PLATEAU_ACTS = ["--model.scheduler.init_args.patience", "0"]
ONE_CYCLE = ["--model.scheduler.class_path", "torch.optim.lr_scheduler.OneCycleLR",
             "--model.scheduler.init_args.max_lr", "0.002", "--model.scheduler.init_args.total_steps", "null",
             "--model.scheduler_interval", "step"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("step-groups"))


def train(data_dir: Path, root: Path, steps_per_batch: int, *extra: str, recipe: str = "cnn.yaml",
          epochs: int = 3) -> DigitCLI:
    """A whole `fit` of `recipe` in this process; returns the CLI with its trained module and Trainer."""
    args = tiny_run_args(data_dir, "--trainer.accelerator", "cpu", "--trainer.deterministic", "true",
                         "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "1.0",
                         "--trainer.enable_progress_bar", "false",
                         "--trainer.logger.init_args.save_dir", str(root),
                         "--data.steps_per_batch", str(steps_per_batch), *extra, config=RECIPES / recipe)
    return DigitCLI(args=["fit", *args])


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


@pytest.mark.slow  # whole runs in this process: the end-to-end tier
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


@pytest.mark.slow
def test_max_steps_counts_optimizer_steps(data_dir, tmp_path):
    cli = train(data_dir, tmp_path, 4, "--trainer.max_steps", "7", "--trainer.max_epochs", "5")
    assert cli.trainer.global_step == 7


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


def test_ctrl_c_during_a_group_is_raised_before_the_next():
    hold = CtrlCHold()
    with hold.holding():
        signal.raise_signal(signal.SIGINT)  # noted, not raised: the group's steps go on
        finished = True
    assert finished and hold.pending
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), hold.holding():
        pytest.fail("the next group must not start")
    assert not hold.pending


def test_bad_steps_per_batch_is_one_line(data_dir, tmp_path):
    with raises_one_line(DataError, "data.steps_per_batch must be at least 1, got 0"):
        train(data_dir, tmp_path, 0)


@pytest.mark.slow
def test_swa_averages_every_step_of_a_batch(data_dir, tmp_path):
    """best.yaml (SWA over the second half of the run, one-cycle schedule): the average is the same."""
    one = train(data_dir, tmp_path / "one", 1, recipe="best.yaml", epochs=4)
    grouped = train(data_dir, tmp_path / "grouped", 4, recipe="best.yaml", epochs=4)
    averaged = [c for c in grouped.trainer.callbacks if type(c).__name__ == "SWAWeightAveraging"][0]
    assert int(averaged._average_model.n_averaged) == 14, "every step of epochs 2 and 3 (200 images: 7 steps an epoch)"
    assert_same_training(state(one), state(grouped))  # the module holds the average after fit


def test_other_weight_averaging_needs_one_step_a_batch(data_dir, tmp_path):
    with raises_one_line(UserError, "EMAWeightAveraging averages the weights once per training batch"):
        train(data_dir, tmp_path, 2, "--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
              recipe="quick.yaml")
