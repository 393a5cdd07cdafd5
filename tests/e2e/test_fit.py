"""`fit` from the command line, as a user runs it on tiny CSVs, and the run it leaves scored by
`validate`, `test` and `predict`."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from digit_recognizer.data.csv import write_digits_csv

from helpers.cli import TESTS_ON_PATH, run_cli, tiny_run_args, workdir_args
from helpers.data import random_digits, write_tiny_data
from helpers.errors import one_line_error
from helpers.paths import RECIPES, REPO
from helpers.runs import checkpoints


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with tiny data and one finished 1-epoch `fit` in lightning_logs/version_0."""
    root = tmp_path_factory.mktemp("cli")
    write_tiny_data(root)
    result = run_cli("fit", *workdir_args(root), cwd=root)
    assert "val/acc" in result.stdout
    return root


def test_fit_writes_checkpoints_config_and_events(workdir):
    run = workdir / "lightning_logs" / "version_0"
    names = sorted(p.name for p in checkpoints(workdir).iterdir())
    assert names[0].startswith("best-epoch00-acc") and names[1] == "last.ckpt"
    assert list(run.glob("events.out.tfevents.*"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["batch_size"] == 32 and config["trainer"]["max_epochs"] == 1
    assert (workdir / "cache").is_dir() and list((workdir / "cache").iterdir()), "parsed CSVs are cached"


def test_last_checkpoint_is_written_after_every_epoch(tmp_path):
    """What `--ckpt_path last` resumes: epoch 0's last.ckpt is there when epoch 1 starts, epoch 1's at the end."""
    write_tiny_data(tmp_path)
    record = tmp_path / "last_epochs.json"
    run_cli("fit", *workdir_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.callbacks+=helpers.probes.LastCheckpointEpochs",
                                 "--trainer.callbacks.record", str(record)), cwd=tmp_path, env=TESTS_ON_PATH)
    assert json.loads(record.read_text()) == [None, 0, 1], "last.ckpt's epoch at the start of epochs 0, 1 and at the end"


@pytest.mark.parametrize("subcommand, metric", [("validate", "val/acc"), ("test", "test/acc")])
def test_validate_and_test_score_a_checkpoint(workdir, subcommand, metric):
    result = run_cli(subcommand, *workdir_args(workdir, "--ckpt_path", "best"), cwd=workdir)
    assert metric in result.stdout


def test_test_scores_a_labelled_csv(workdir, tmp_path):
    """The file's own labels are scored, not the validation split's: 5 of its 20 labels are the
    network's answers, the other 15 are not, so test/acc is exactly 0.25."""
    from digit_recognizer.data.datamodule import to_model_input
    from digit_recognizer.inference import network_from_checkpoint

    images, _ = random_digits(20, seed=5)
    last = checkpoints(workdir) / "last.ckpt"
    with torch.no_grad():
        answers = network_from_checkpoint(last)(to_model_input(images)).argmax(dim=1)
    labels = torch.where(torch.arange(20) < 5, answers, (answers + 1) % 10)
    labelled = tmp_path / "labelled.csv"
    write_digits_csv(labelled, images, labels)
    result = run_cli("test", *workdir_args(workdir, "--ckpt_path", "last", "--data.test_csv", str(labelled)), cwd=workdir)
    assert float(re.search(r"test/acc\s*│\s*([0-9.]+)", result.stdout).group(1)) == pytest.approx(0.25, abs=1e-6)


def test_predict_writes_a_kaggle_submission(workdir, tmp_path):
    target = tmp_path / "out" / "my_submission.csv"
    result = run_cli("predict", *workdir_args(workdir, "--ckpt_path", "best", "--submission.path", str(target)), cwd=workdir)
    assert f"written to {target}" in result.stdout
    submission = pd.read_csv(target)
    assert list(submission.columns) == ["ImageId", "Label"]
    assert submission["ImageId"].tolist() == list(range(1, 51))
    assert submission["Label"].between(0, 9).all()


def test_predict_defaults_to_the_checkpoint_run_folder(workdir):
    run_cli("predict", *workdir_args(workdir, "--ckpt_path", "last"), cwd=workdir)
    assert len(pd.read_csv(workdir / "lightning_logs" / "version_0" / "submission.csv")) == 50


def test_predict_in_the_run_folder_keeps_the_training_config(workdir):
    run = workdir / "lightning_logs" / "version_0"
    run_cli("predict", *workdir_args(workdir, "--ckpt_path", "last"), cwd=workdir)
    assert yaml.safe_load((run / "config.yaml").read_text())["ckpt_path"] is None, "still the fit's config"
    assert yaml.safe_load((run / "predict_config.yaml").read_text())["ckpt_path"].endswith("last.ckpt")


def test_print_config_shows_the_reference_recipe():
    result = run_cli("fit", "--config", str(RECIPES / "cnn.yaml"), "--print_config", cwd=REPO)
    config = yaml.safe_load(result.stdout)
    optimizer = config["model"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.RMSprop"
    assert (optimizer["init_args"]["lr"], optimizer["init_args"]["alpha"], optimizer["init_args"]["eps"]) == (1e-3, 0.9, 1e-8)
    assert config["data"]["batch_size"] == 86 and config["trainer"]["max_epochs"] == 30
    assert config["data"]["elastic_alpha"] == 0, "the reference recipe has no elastic distortion"
    assert config["model"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.ReduceLROnPlateau"


def test_a_checkpoint_file_is_checked_from_a_single_read(workdir, monkeypatch):
    """parse_arguments reads --ckpt_path FILE for its early error; the architecture check reuses it."""
    from digit_recognizer import checkpoints as checkpoint_files, cli

    reads = []
    read = checkpoint_files.read_checkpoint

    def counting_read(path):
        reads.append(path)
        return read(path)

    monkeypatch.setattr(cli, "read_checkpoint", counting_read)
    monkeypatch.setattr(checkpoint_files, "read_checkpoint", counting_read)
    monkeypatch.chdir(workdir)
    last = str(checkpoints(workdir) / "last.ckpt")
    cli.DigitCLI(args=["validate", *workdir_args(workdir, "--ckpt_path", last, "--trainer.enable_progress_bar", "false",
                                                 "--trainer.callbacks", "[]")])
    assert reads == [last]


def test_console_script_is_installed():
    script = shutil.which("digit-recognizer")
    if script is None:
        pytest.skip("package not installed with pip (no console script on PATH)")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "fit" in result.stdout and "predict" in result.stdout


def test_the_cli_takes_it_as_a_callback_and_refuses_a_bad_start_in_one_line(tiny_data, tmp_path):
    swa = ["--trainer.callbacks+=digit_recognizer.training.SWAWeightAveraging", "--trainer.callbacks.start_epoch"]
    run_cli("fit", *tiny_run_args(tiny_data, *swa, "0"), cwd=tmp_path)
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)
    assert state["averaging_state"]["n_averaged"] == 3
    result = run_cli("fit", *tiny_run_args(tiny_data, *swa, "1.5"), cwd=tmp_path, check=False)
    assert one_line_error(result.returncode, result.stderr) == (
        "error: SWAWeightAveraging start_epoch must be an epoch index >= 0 or a share in (0, 1), not 1.5")
