"""Every shipped recipe resumes exactly on the CPU: after an epoch's end and after SIGTERM or Ctrl-C
in mid-epoch, the resumed run ends with the uninterrupted run's weights, optimizer, scheduler,
weight average and random states. The runs are long enough for the plateau scheduler and the
weight average to act (checked, so that the tests can fail)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from helpers.cli import TESTS_ON_PATH, run_cli, tiny_run_args
from helpers.data import write_tiny_data
from helpers.paths import RECIPES


LAST = Path("lightning_logs/version_0/checkpoints/last.ckpt")


CALLBACK_STATES = ("RandomStateCheckpoint", "EpochEndSchedulerStep", "SWAWeightAveraging")


def fit(cwd: Path, recipe: str, *extra: str, check: bool = True):
    cwd.mkdir(exist_ok=True)
    args = tiny_run_args(cwd.parent / "data", "--trainer.accelerator", "cpu", "--trainer.deterministic", "true",
                         config=RECIPES / recipe)
    # this subprocess's environment only: SignalAt imports from tests/
    return run_cli("fit", *args, *extra, cwd=cwd, check=check, env=TESTS_ON_PATH)


def signal_at(epoch: int, batch: int, signum: signal.Signals) -> list[str]:
    return ["--trainer.callbacks+=helpers.signal_at.SignalAt", "--trainer.callbacks.epoch", str(epoch),
            "--trainer.callbacks.batch", str(batch), "--trainer.callbacks.signum", str(int(signum))]


def signal_at_epoch_end(epoch: int, hook: str, signum: signal.Signals) -> list[str]:
    return ["--trainer.callbacks+=helpers.signal_at.SignalAtEpochEnd", "--trainer.callbacks.epoch", str(epoch),
            "--trainer.callbacks.hook", hook, "--trainer.callbacks.signum", str(int(signum))]


def load(folder: Path) -> dict:
    return torch.load(folder / LAST, map_location="cpu", weights_only=True)


def assert_same_state(expected: dict, got: dict) -> None:
    """Everything a resumed run carries on with: weights, optimizer, schedulers, averages, RNG."""
    assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"])
    for key in ("state_dict", "current_model_state", "averaging_state"):  # averaged weights and buffers, count
        assert (key in got) == (key in expected), key
        for name, tensor in expected.get(key, {}).items():
            assert torch.equal(tensor, got[key][name]), f"{key} {name} differs after resuming"
    torch.testing.assert_close(got["optimizer_states"], expected["optimizer_states"], rtol=0, atol=0)
    assert got["lr_schedulers"] == expected["lr_schedulers"]
    for name in CALLBACK_STATES:
        if name in expected["callbacks"]:
            torch.testing.assert_close(got["callbacks"][name], expected["callbacks"][name], rtol=0, atol=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume")
    write_tiny_data(folder)
    return folder


PATIENCE_0 = ["--model.scheduler.init_args.patience", "0"]  # the plateau acts within four epochs


@pytest.fixture(scope="module")
def cnn_straight(root) -> dict:
    fit(root / "cnn-straight", "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4")
    expected = load(root / "cnn-straight")
    plateau = expected["lr_schedulers"][0]
    # last.ckpt is written before the last epoch's step (EpochEndSchedulerStep keeps that one pending)
    assert plateau["last_epoch"] == 3 and plateau["_last_lr"][0] < 1e-3, "the scheduler must act in the run"
    return expected


def test_cnn_resumes_exactly_after_an_epochs_end(root, cnn_straight):
    folder = root / "cnn-epochs"
    fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "2")
    fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(cnn_straight, load(folder))


def test_cnn_resumes_exactly_after_sigterm_in_mid_epoch(root, cnn_straight):
    folder = root / "cnn-sigterm"
    stopped = fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4",
                  *signal_at(2, 1, signal.SIGTERM), check=False)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert load(folder)["global_step"] == 8, "SIGTERM is acted on once the batch it came in has trained"
    fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(cnn_straight, load(folder))


def test_steps_per_batch_resumes_exactly_after_sigterm_and_ctrl_c_inside_a_batch(root):
    """data.steps_per_batch 2 (two optimizer steps a Lightning batch): SIGTERM between batches, and
    Ctrl-C inside one, which is held back until the batch's steps are done."""
    settings = ["--data.steps_per_batch", "2", *PATIENCE_0, "--trainer.max_epochs", "4"]
    fit(root / "k2-straight", "cnn.yaml", *settings)
    expected = load(root / "k2-straight")
    assert expected["global_step"] == 24 and expected["lr_schedulers"][0]["_last_lr"][0] < 1e-3
    ctrl_c_at_step_9 = ["--trainer.callbacks+=helpers.signal_at.SignalAtStep", "--trainer.callbacks.step", "9"]
    for name, stop, status, steps_done in [("k2-sigterm", signal_at(2, 1, signal.SIGTERM), 143, 16),
                                           ("k2-ctrl-c", ctrl_c_at_step_9, 130, 10)]:
        folder = root / name
        stopped = fit(folder, "cnn.yaml", *settings, *stop, check=False)
        assert stopped.returncode == status, stopped.stderr[-2000:]
        assert load(folder)["global_step"] == steps_done, "stopped between batches, the batch's steps all taken"
        fit(folder, "cnn.yaml", *settings, "--ckpt_path", "last")
        assert_same_state(expected, load(folder))


def test_cnn_resumes_exactly_after_sigterm_at_an_epochs_end(root, cnn_straight):
    """SIGTERM in epoch 1's validation end: Lightning stops once it has stepped the plateau scheduler
    and completed the epoch, so the checkpoint must not hold that step as still pending."""
    folder = root / "cnn-sigterm-epoch-end"
    stopped = fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4",
                  *signal_at_epoch_end(1, "validation", signal.SIGTERM), check=False)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert load(folder)["global_step"] == 6
    fit(folder, "cnn.yaml", *PATIENCE_0, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(cnn_straight, load(folder))


def test_quick_resumes_exactly_after_ctrl_c_in_mid_epoch(root):
    epochs = ["--trainer.max_epochs", "3"]  # quick.yaml's own length
    fit(root / "quick-straight", "quick.yaml", *epochs)
    folder = root / "quick-ctrl-c"
    stopped = fit(folder, "quick.yaml", *epochs, *signal_at(1, 2, signal.SIGINT), check=False)
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-2000:]
    assert load(folder)["global_step"] == 5, "Ctrl-C stops at once, before the batch it came in"
    fit(folder, "quick.yaml", *epochs, "--ckpt_path", "last")
    assert_same_state(load(root / "quick-straight"), load(folder))


@pytest.fixture(scope="module")
def best_straight(root) -> dict:
    fit(root / "best-straight", "best.yaml", "--trainer.max_epochs", "4")
    expected = load(root / "best-straight")
    assert "current_model_state" in expected, "the weight average must have begun"
    return expected


@pytest.mark.parametrize("epoch, batch", [(2, 1), (3, 0)], ids=["mid-epoch", "epoch-start"])
def test_best_resumes_exactly_with_its_weight_average(root, best_straight, epoch, batch):
    """SWA from epoch 2 of 4: a stop inside the averaged epochs must not leave steps out of the average."""
    folder = root / f"best-{epoch}-{batch}"
    stopped = fit(folder, "best.yaml", "--trainer.max_epochs", "4", *signal_at(epoch, batch, signal.SIGTERM), check=False)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    fit(folder, "best.yaml", "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(best_straight, load(folder))


@pytest.fixture(scope="module")
def strong_straight(root) -> dict:
    fit(root / "strong-straight", "deotte.yaml", "--trainer.max_epochs", "4")
    expected = load(root / "strong-straight")
    assert "current_model_state" in expected, "the weight average must have begun"
    assert any(name.endswith("running_mean") for name in expected["state_dict"]), "BatchNorm's statistics are saved"
    return expected


def test_strong_resumes_exactly_after_sigterm_in_mid_epoch(root, strong_straight):
    """DeotteCNN with BatchNorm and SWA: the running statistics of the network and of its average
    (both in the state dicts assert_same_state compares) match the uninterrupted run's."""
    folder = root / "strong-sigterm"
    stopped = fit(folder, "deotte.yaml", "--trainer.max_epochs", "4", *signal_at(2, 1, signal.SIGTERM), check=False)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert load(folder)["global_step"] == 8, "SIGTERM is acted on once the batch it came in has trained"
    fit(folder, "deotte.yaml", "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(strong_straight, load(folder))


VALIDATED = ["--data.val_fraction", "0.1"]  # best.yaml trains on every row: validate, for on_validation_end


@pytest.fixture(scope="module")
def best_validated_straight(root) -> dict:
    fit(root / "best-validated-straight", "best.yaml", "--trainer.max_epochs", "4", *VALIDATED)
    return load(root / "best-validated-straight")


@pytest.mark.parametrize("hook, signum", [
    ("train", signal.SIGTERM), ("train", signal.SIGINT), ("validation", signal.SIGTERM), ("validation", signal.SIGINT),
], ids=["sigterm-train-epoch-end", "ctrl-c-train-epoch-end", "sigterm-validation-end", "ctrl-c-validation-end"])
def test_best_resumes_exactly_after_a_signal_at_an_epochs_end(root, request, hook, signum):
    """A signal after the epoch's last batch (in its validation's end or its train-epoch end), inside
    the averaged epochs: the run stops there, not epochs later, and resumes to the straight run's state."""
    extra = VALIDATED if hook == "validation" else []
    expected = request.getfixturevalue("best_validated_straight" if hook == "validation" else "best_straight")
    folder = root / f"best-end-{hook}-{signum.name}"
    stopped = fit(folder, "best.yaml", "--trainer.max_epochs", "4", *extra, *signal_at_epoch_end(2, hook, signum),
                  check=False)
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]
    assert load(folder)["global_step"] == 9, "stopped at the end of epoch 2 (3 batches an epoch)"
    fit(folder, "best.yaml", "--trainer.max_epochs", "4", *extra, "--ckpt_path", "last")
    assert_same_state(expected, load(folder))


def test_sigterm_after_the_last_epoch_keeps_the_finished_run(root, best_straight):
    """After the final epoch there is nothing left to resume: exit 143, and last.ckpt is the
    uninterrupted run's own, which `--ckpt_path last` leaves as it is."""
    folder = root / "best-end-last-epoch"
    stopped = fit(folder, "best.yaml", "--trainer.max_epochs", "4", *signal_at_epoch_end(3, "train", signal.SIGTERM),
                  check=False)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert_same_state(best_straight, load(folder))
    fit(folder, "best.yaml", "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert_same_state(best_straight, load(folder))


@pytest.mark.parametrize("command, signum, status", [
    ("predict", signal.SIGTERM, 143), ("predict", signal.SIGINT, 130), ("validate", signal.SIGTERM, 143),
    ("test", signal.SIGTERM, 143),
])
def test_signals_stop_evaluating_commands_promptly_and_write_nothing(root, cnn_straight, command, signum, status):
    """SIGTERM or Ctrl-C in predict or validate: exit 143 / 130, the existing submission untouched."""
    folder = root / "cnn-straight"
    submission = folder / "submission.csv"
    submission.write_text("ImageId,Label\n1,7\n")
    args = tiny_run_args(root / "data", config=RECIPES / "cnn.yaml")
    result = run_cli(command, *args, "--ckpt_path", "last", "--data.batch_size", "8", "--submission.path", str(submission),
                     "--trainer.callbacks+=helpers.signal_at.SignalAtPredictBatch", "--trainer.callbacks.batch", "1",
                     "--trainer.callbacks.signum", str(int(signum)), cwd=folder, check=False, env=TESTS_ON_PATH)
    assert result.returncode == status, result.stderr[-2000:]
    assert submission.read_text() == "ImageId,Label\n1,7\n"
    assert "Submission (" not in result.stdout


def test_quick_resumes_exactly_after_an_epochs_end(root):
    folder = root / "quick-epochs"
    fit(folder, "quick.yaml", "--trainer.max_epochs", "1")
    fit(folder, "quick.yaml", "--trainer.max_epochs", "3", "--ckpt_path", "last")
    if not (root / "quick-straight" / LAST).is_file():
        fit(root / "quick-straight", "quick.yaml", "--trainer.max_epochs", "3")
    assert_same_state(load(root / "quick-straight"), load(folder))
