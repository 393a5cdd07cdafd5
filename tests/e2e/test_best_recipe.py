"""The best.yaml recipe end to end on tiny data: every row trains, the averaged weights are what is saved."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from digit_recognizer.report import CURVES_FILE

from helpers.cli import run_cli, tiny_run_args
from helpers.data import write_tiny_data
from helpers.paths import RECIPES, REPO


BEST_CONFIG = RECIPES / "best.yaml"
RUN = Path("lightning_logs") / "version_0"


def best_args(data_dir, *extra: str) -> list[str]:
    """best.yaml on tiny data, 2 epochs of 3 batches: a one-cycle of 6 steps."""
    return tiny_run_args(data_dir, "--trainer.max_epochs", "2", *extra, config=BEST_CONFIG)


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    """A 2-epoch fit of best.yaml (no validation split) and its last.ckpt, read back."""
    root = tmp_path_factory.mktemp("best")
    data = write_tiny_data(root)
    result = run_cli("fit", *best_args(data), cwd=root)
    last = root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    return root, data, result, torch.load(last, map_location="cpu", weights_only=False)


def test_best_recipe_trains_on_every_row_without_validation(best_run):
    root, _, result, state = best_run
    assert "val/acc" not in result.stdout
    assert "across ranks is zero" not in result.stderr, "no validation is intended: no warning about it"
    assert state["datamodule_hyper_parameters"]["val_fraction"] == 0.0
    assert sorted(p.name for p in (root / "lightning_logs" / "version_0" / "checkpoints").iterdir()) == ["last.ckpt"]
    assert state["global_step"] == 6


def test_one_cycle_spans_exactly_the_run(best_run):
    *_, state = best_run
    scheduler = state["lr_schedulers"][0]
    # 2 epochs x 3 batches: sized from the run, not from the config (which leaves it null)
    assert scheduler["total_steps"] == 6 and scheduler["last_epoch"] == 6
    assert state["optimizer_states"][0]["param_groups"][0]["max_lr"] == 2e-3


def test_checkpoint_holds_the_averaged_weights(best_run):
    *_, state = best_run
    averaged, current = state["state_dict"], state["current_model_state"]
    assert averaged.keys() == current.keys()
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged)
    # SWA from half of max_epochs: the 3 steps of the second epoch, one update each
    assert state["averaging_state"]["n_averaged"] == 3


def test_predict_from_the_last_checkpoint(best_run, tmp_path):
    root, data, *_ = best_run
    target = tmp_path / "submission.csv"
    result = run_cli("predict", *best_args(data, "--ckpt_path", "last", "--submission.path", str(target)), cwd=root)
    assert pd.read_csv(target)["ImageId"].tolist() == list(range(1, 51))
    assert "WeightAveraging" not in result.stderr, "the averaged weights are what predict should use: no warning"


def test_report_of_a_run_without_validation_draws_its_curves(best_run, tmp_path):
    root, *_ = best_run
    result = run_cli("report", str(root / RUN), "--output-dir", str(tmp_path), cwd=root)
    assert (tmp_path / CURVES_FILE).is_file()
    assert any(line.startswith("no projector embedding:") for line in result.stdout.splitlines()), result.stdout


FIVE_VIEWS = "averaging 5 views (the image and its shifts [1, 0] [-1, 0] [0, 1] [0, -1]) of 1 network"


def without_the_recipe(data, *extra: str) -> list[str]:
    """best_args without --config best.yaml: what a plain `predict --ckpt_path last` gets (cnn.yaml's defaults)."""
    args = best_args(data, *extra)
    del args[:2]
    return args


def test_predict_of_the_run_uses_its_recorded_views_without_the_recipe(best_run, tmp_path):
    root, data, *_ = best_run
    plain, recipe = tmp_path / "plain.csv", tmp_path / "recipe.csv"
    result = run_cli("predict", *without_the_recipe(data, "--ckpt_path", "last", "--submission.path", str(plain)), cwd=root)
    assert f"predict: {FIVE_VIEWS}" in result.stdout + result.stderr
    run_cli("predict", *best_args(data, "--ckpt_path", "last", "--submission.path", str(recipe)), cwd=root)
    assert plain.read_text() == recipe.read_text()


def test_shifts_on_the_command_line_win_over_the_recorded_ones(best_run, tmp_path):
    root, data, *_ = best_run
    result = run_cli("predict", *without_the_recipe(data, "--ckpt_path", "last", "--inference.shifts", "[]",
                                                    "--submission.path", str(tmp_path / "one_view.csv")), cwd=root)
    output = result.stdout + result.stderr
    assert "predict: averaging 1 view (the image alone) of 1 network" in output and "5 views" not in output


def test_validate_and_export_of_the_run_use_its_recorded_views(best_run, tmp_path):
    root, data, *_ = best_run
    # the run trained on every row: validate needs a split to score (here rows it trained on)
    result = run_cli("validate", *without_the_recipe(data, "--ckpt_path", "last", "--data.val_fraction", "0.1"), cwd=root)
    assert f"validate: {FIVE_VIEWS}" in result.stdout + result.stderr and "val/acc" in result.stdout
    output = tmp_path / "model.onnx"
    result = run_cli("export", *without_the_recipe(data, "--ckpt_path", "last", "--output", str(output)), cwd=root)
    assert f"export: {FIVE_VIEWS}" in result.stdout
    card = json.loads((tmp_path / "model.onnx.json").read_text())
    assert card["recipe"]["inference"]["shifts"] == [[1, 0], [-1, 0], [0, 1], [0, -1]]


def test_print_config_shows_the_best_recipe():
    config = yaml.safe_load(run_cli("fit", "--config", str(BEST_CONFIG), "--print_config", cwd=REPO).stdout)
    assert config["model"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert config["model"]["label_smoothing"] == 0.1 and config["data"]["val_fraction"] == 0.0
    assert config["model"]["scheduler"]["init_args"]["final_div_factor"] == 0.2
    averaging = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("WeightAveraging")]
    assert [c["class_path"] for c in averaging] == ["digit_recognizer.training.SWAWeightAveraging"]
    assert averaging[0]["init_args"]["start_epoch"] == 0.5
    assert config["inference"]["shifts"] == [[1, 0], [-1, 0], [0, 1], [0, -1]]


def test_a_resumed_cycle_cannot_change_length(best_run):
    root, data, *_ = best_run
    saved_config = root / "lightning_logs" / "version_0" / "config.yaml"
    before = saved_config.read_text()
    result = run_cli("fit", *best_args(data, "--ckpt_path", "last", "--trainer.max_epochs", "3"), cwd=root, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "one-cycle schedule has 6 steps, this run would take 9" in result.stderr.strip().splitlines()[-1]
    assert saved_config.read_text() == before, "the refused resume must not rewrite the run's config.yaml"
