"""Bad checkpoints and configuration: one clear line naming the file or key, non-zero exit; checkpoint
files written whole and random states kept in them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from digit_recognizer.resume import RandomStateCheckpoint
from digit_recognizer.main import main
from digit_recognizer.checkpoints import AtomicCheckpointIO, check_checkpoint
from digit_recognizer.errors import CheckpointError
from digit_recognizer.classifier import DigitClassifier

from conftest import CNN_CONFIG, raises_one_line, run_cli, tiny_run_args


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return DigitClassifier()


def save_checkpoint(path: Path, state_dict: dict) -> Path:
    torch.save({"epoch": 0, "global_step": 1, "state_dict": state_dict}, path)
    return path


def test_a_checkpoint_of_this_model_passes(tmp_path, model):
    check_checkpoint(save_checkpoint(tmp_path / "ok.ckpt", model.state_dict()), model)


def test_truncated_checkpoint(tmp_path, model):
    path = save_checkpoint(tmp_path / "cut.ckpt", model.state_dict())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with raises_one_line(CheckpointError, match=r"cut.ckpt: truncated or not a checkpoint file \(.+\)$"):
        check_checkpoint(path, model)


def test_not_a_lightning_checkpoint(tmp_path, model):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with raises_one_line(CheckpointError, match="plain.pt: not a Lightning checkpoint") as error:
        check_checkpoint(tmp_path / "plain.pt", model)
    assert "\n" not in str(error.value)


def test_checkpoint_of_another_model(tmp_path, model):
    path = save_checkpoint(tmp_path / "other.ckpt", nn.Linear(784, 10).state_dict())
    with raises_one_line(CheckpointError, match=r"other.ckpt: a checkpoint of a different model \(\d+ weights missing") as error:
        check_checkpoint(path, model)
    assert "\n" not in str(error.value), "one line, not Lightning's list of every weight"


def test_checkpoint_of_another_architecture(tmp_path, model):
    state, name = wider_state_dict()  # another layer width
    path = save_checkpoint(tmp_path / "wide.ckpt", state)
    with raises_one_line(CheckpointError, match=rf"different architecture \('{name}' has shape \(7, ") as error:
        check_checkpoint(path, model)
    assert "\n" not in str(error.value)


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_dies(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)

    def dying_save(obj, file, *args, **kwargs):  # AtomicCheckpointIO passes an open file
        file.write(b"half a checkpo")
        file.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file may be left behind"


# -- through the command line: exit status 2, one `error:` line, a traceback only with --verbose ----

@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    """main() gets its arguments as a list; pytest's own argv must not look like CLI arguments too."""
    monkeypatch.setattr(sys, "argv", ["digit-recognizer"])


def run_main(capsys, *args: str) -> tuple[int, str]:
    """cli.main in this process (no new interpreter to start): its exit status and stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


def one_line_error(status: int, stderr: str) -> str:
    assert status == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def wider_state_dict() -> tuple[dict, str]:
    state = dict(DigitClassifier().state_dict())
    name = next(key for key in state if key.endswith("weight"))
    state[name] = torch.zeros(7, *state[name].shape[1:])
    return state, name


def test_cli_missing_truncated_and_foreign_checkpoints(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truncated = save_checkpoint(tmp_path / "cut.ckpt", DigitClassifier().state_dict())
    truncated.write_bytes(truncated.read_bytes()[:1000])
    state, name = wider_state_dict()
    foreign = save_checkpoint(tmp_path / "wide.ckpt", state)
    cases = {
        "nowhere.ckpt": "error: nowhere.ckpt: checkpoint file not found",
        str(truncated): f"error: {truncated}: truncated or not a checkpoint file (",
        str(foreign): f"error: {foreign}: a checkpoint of a different architecture ('{name}' has shape (7, ",
    }
    for path, message in cases.items():
        error = one_line_error(*run_main(capsys, "validate", *tiny_run_args(tiny_data), "--ckpt_path", path))
        assert error.startswith(message)
    with raises_one_line(CheckpointError):  # --verbose: the exception itself, so its traceback is shown
        main(["--verbose", "validate", *tiny_run_args(tiny_data), "--ckpt_path", str(foreign)])


@pytest.mark.slow
def test_cli_bad_csv_names_file_line_and_column(tiny_data, tmp_path):
    """In a real process: exit status 2 and one line, no traceback; no run folder with checkpoints."""
    train = tiny_data / "train.csv"
    lines = train.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",3.5"  # line 6 of the file: its last pixel
    train.write_text("\n".join(lines) + "\n")
    result = run_cli("fit", *tiny_run_args(tiny_data), cwd=tmp_path, check=False)
    assert one_line_error(result.returncode, result.stderr) == (
        f"error: {train}: line 6, column 'pixel783': 3.5 is not a whole number"
    )
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    "yaml, key",
    [
        ("data:\n  batch_size: many\n", "data.batch_size"),  # wrong type
        ("data:\n  bach_size: 32\n", "data.bach_size"),  # unknown key
        ("submission:\n  path: [a, b]\n", "submission.path"),  # our own callback's field
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, yaml, key):
    (tmp_path / "bad.yaml").write_text(yaml)
    status, stderr = run_main(capsys, "fit", "--config", str(CNN_CONFIG), "--config", str(tmp_path / "bad.yaml"))
    assert status == 2 and "Traceback" not in stderr
    error = stderr[stderr.rindex("error: "):]
    assert key in error, error


def test_contradictory_trainer_settings_are_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, stderr = run_main(capsys, "fit", "--config", str(CNN_CONFIG), "--trainer.enable_checkpointing", "false")
    assert "enable_checkpointing=False" in one_line_error(status, stderr)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--data.zoom", "1.5", "error: data.zoom must be in [0, 1), got 1.5"),
        ("--data.elastic_sigma", "0", "error: data.elastic_sigma must be > 0, got 0.0"),
        ("--data.mixup_alpha", "-0.2", "error: data.mixup_alpha must be >= 0, got -0.2"),
    ],
)
def test_augmentation_ranges_are_one_line_errors(tmp_path, capsys, monkeypatch, option, value, message):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(*run_main(capsys, "fit", "--config", str(CNN_CONFIG), option, value)) == message


def test_random_states_survive_a_checkpoint_round_trip(tmp_path):
    def draws() -> tuple:
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    torch.save(RandomStateCheckpoint().state_dict(), tmp_path / "state.pt")
    expected = draws()
    draws()  # move every generator on
    restored = RandomStateCheckpoint()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    restored.on_train_start(None, None)
    assert draws() == expected
