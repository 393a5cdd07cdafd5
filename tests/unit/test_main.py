"""The command line in this process (main()): --help, the default recipe, and bad configuration or
checkpoints as one `error:` line naming the file or key, exit status 2."""

from __future__ import annotations

import sys

import pytest

from digit_recognizer.main import main
from digit_recognizer.errors import CheckpointError
from digit_recognizer.classifier import DigitClassifier

from helpers.checkpoints import save_checkpoint, wider_state_dict
from helpers.cli import tiny_run_args
from helpers.errors import one_line_error, raises_one_line
from helpers.paths import CNN_CONFIG


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


def test_help_lists_every_subcommand_and_verbose(capsys):
    with pytest.raises(SystemExit) as status:
        main(["--help"])
    out = capsys.readouterr().out
    assert status.value.code == 0
    for name in ("fit", "validate", "test", "predict", "report", "ensemble", "export", "--verbose"):
        assert f"  {name}" in out, name


def test_fit_without_a_config_is_the_reference_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--print_config"])
    import yaml

    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_epochs"] == 30 and config["data"]["batch_size"] == 86
    assert config["model"]["network"]["class_path"] == "digit_recognizer.models.DigitCNN"
    assert config["model"]["optimizer"]["class_path"] == "torch.optim.RMSprop"


def test_an_unknown_recipe_is_one_line_naming_the_recipes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as status:
        main(["fit", "--config", "nope.yaml"])
    error = one_line_error(status.value.code, capsys.readouterr().err)
    assert "nope.yaml: no such file, and no recipe of that name" in error and "best.yaml" in error


def test_batch_size_zero_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as status:
        main(["fit", "--data.batch_size", "0"])
    assert "data.batch_size must be at least 1, got 0" in one_line_error(status.value.code, capsys.readouterr().err)
