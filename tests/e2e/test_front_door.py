"""What a newcomer meets first: --help, recipes by name, the default recipe, honest failures that
leave nothing behind, old and foreign checkpoints, own images, export, the checks before long work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from digit_recognizer.checkpoints import CHECKPOINT_FORMAT
from digit_recognizer.names import FORMAT_KEY

from helpers.cli import run_cli, start_cli, tiny_run_args
from helpers.data import write_tiny_data
from helpers.errors import one_line_error


RUN = Path("lightning_logs/version_0")


def tiny(data: Path, *extra: str) -> list[str]:
    """tiny_run_args without the config path: the recipe is found by name."""
    args = tiny_run_args(data, *extra)
    del args[:2]  # --config PATH
    return args


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with tiny data and one 1-epoch fit of `cnn.yaml`, named as a user names it."""
    root = tmp_path_factory.mktemp("front")
    write_tiny_data(root)
    run_cli("fit", "--config", "cnn.yaml", *tiny(root / "data"), cwd=root)
    return root


def test_a_recipe_by_name_trains_and_predict_prints_counts_and_the_submit_line(trained):
    assert (trained / RUN / "checkpoints" / "last.ckpt").is_file()
    result = run_cli("predict", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "last", cwd=trained)
    submission = trained / RUN / "submission.csv"
    assert f"Submission (50 rows) written to {submission}" in result.stdout
    counts = pd.read_csv(submission)["Label"].value_counts()
    assert "Digits: " + ", ".join(f"{d}: {counts.get(d, 0)}" for d in range(10)) in result.stdout
    assert f"kaggle competitions submit -c digit-recognizer -f {submission} -m" in result.stdout


def test_a_failure_before_work_leaves_no_run_folder_and_no_event_file(trained, tmp_path):
    before = sorted(p.name for p in (trained / RUN).iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("validate", "--config", "cnn.yaml", *tiny(empty), "--ckpt_path", "last", cwd=trained, check=False)
    assert "no train.csv or test.csv" in one_line_error(result.returncode, result.stderr)
    assert sorted(p.name for p in (trained / RUN).iterdir()) == before, "nothing added to the scored run"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = run_cli("fit", "--config", "cnn.yaml", *tiny(empty), cwd=fresh, check=False)
    assert result.returncode == 2 and not (fresh / "lightning_logs").exists()


def checkpoint_with(trained: Path, tmp_path: Path, change) -> Path:
    contents = torch.load(trained / RUN / "checkpoints" / "last.ckpt", weights_only=True)
    change(contents)
    path = tmp_path / "changed.ckpt"
    torch.save(contents, path)
    return path


def to_format_1(contents):
    """As checkpoints were written before the network was injected (and before they recorded
    their inference settings)."""
    del contents[FORMAT_KEY]
    hparams = contents["hyper_parameters"]
    dropouts = hparams.pop("network")["init_args"]
    hparams.update(dropouts, teachers=None, distillation_weight=1.0)
    hparams.pop("distillation", None)
    contents.get("callbacks", {}).pop("InferenceAveraging", None)


def test_a_checkpoint_of_the_earlier_format_still_validates(trained, tmp_path):
    old = checkpoint_with(trained, tmp_path, to_format_1)
    result = run_cli("validate", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", str(old), cwd=trained)
    assert "val/acc" in result.stdout


@pytest.mark.parametrize("command", ["test", "predict", "export"])
def test_a_checkpoint_of_the_earlier_format_still_tests_predicts_and_exports(trained, tmp_path, command):
    old = checkpoint_with(trained, tmp_path, to_format_1)
    result = run_cli(command, "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", str(old), cwd=trained)
    if command == "test":
        assert re.search(r"test/acc\s*│\s*[0-9.]+", result.stdout), result.stdout[-2000:]
    elif command == "predict":  # beside the checkpoint, as for any checkpoint file
        assert pd.read_csv(tmp_path / "submission.csv")["ImageId"].tolist() == list(range(1, 51))
    else:
        assert (tmp_path / "model.onnx").is_file()
        network = json.loads((tmp_path / "model.onnx.json").read_text())["recipe"]["network"]
        assert network == {"class_path": "digit_recognizer.models.DigitCNN",
                           "init_args": {"conv_dropout": 0.25, "dense_dropout": 0.5}}, "migrated to today's terms"


def test_a_misspelt_option_is_one_short_message_naming_the_right_one(tmp_path):
    result = run_cli("fit", "--data.bach_size", "3", cwd=tmp_path, check=False)
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr[-3000:]
    error = one_line_error(result.returncode, result.stderr)
    assert "--data.bach_size" in error and "did you mean --data.batch_size?" in error, error
    assert "python -m digit_recognizer fit --help" in error, error
    assert not (tmp_path / "lightning_logs").exists()


def test_the_cli_runs_where_there_is_no_fcntl(tmp_path):
    """Windows has no fcntl module: the run lock must not need it to import the CLI."""
    process = start_cli("fit", "--help", cwd=tmp_path, prelude='import sys\nsys.modules["fcntl"] = None')
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output[-3000:]
    assert "--data.batch_size" in output and "Traceback" not in output


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update({FORMAT_KEY: CHECKPOINT_FORMAT + 1}), "written by a newer digit_recognizer"),
    (lambda c: c["hyper_parameters"].update(attention_heads=4), "settings this version does not know (attention_heads)"),
    (lambda c: c["hyper_parameters"].update(network={"class_path": "somewhere.Else"}), "cannot use the checkpoint's model settings"),
])
def test_newer_and_foreign_checkpoints_are_one_line(trained, tmp_path, change, message):
    path = checkpoint_with(trained, tmp_path, change)
    result = run_cli("predict", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", str(path), cwd=trained,
                     check=False)
    assert message in one_line_error(result.returncode, result.stderr)


@pytest.mark.parametrize("extra, message", [
    (["--data.batch_size", "16"], "trained with data.batch_size 32, this resume asks for 16"),
    (["--data.split_seed", "7"], "trained with data.split_seed 42"),
    (["--model.optimizer", "torch.optim.Adam"], "trained with another optimizer"),
])
def test_a_resume_with_other_settings_is_refused_before_training(trained, extra, message):
    result = run_cli("fit", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "last", *extra,
                     cwd=trained, check=False)
    assert message in one_line_error(result.returncode, result.stderr)


@pytest.mark.parametrize("target, message", [
    ("a_folder", "is a folder; --submission.path takes a file name"),
    ("file_as_folder/sub.csv", "cannot write the submission there"),
])
def test_an_unusable_submission_path_fails_before_predicting(trained, tmp_path, target, message):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "file_as_folder").write_text("a file, not a folder")
    result = run_cli("predict", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "last",
                     "--submission.path", str(tmp_path / target), cwd=trained, check=False)
    assert message in one_line_error(result.returncode, result.stderr)
    assert "Predicting" not in result.stdout


def test_ensemble_without_test_csv_fails_before_training(tmp_path):
    data = tmp_path / "data"
    write_tiny_data(tmp_path)
    (data / "test.csv.gz").unlink()
    result = run_cli("ensemble", "--seeds", "1", "2", "--config", "cnn.yaml", *tiny(data), cwd=tmp_path, check=False)
    assert "no test.csv (plain or .gz) for the ensemble's submission" in one_line_error(result.returncode, result.stderr)
    assert not (tmp_path / "lightning_logs").exists()


def draw(path: Path, dark_on_light: bool, box: tuple[int, int, int, int]) -> None:
    ink, paper = (20, 200) if dark_on_light else (255, 0)
    image = Image.new("L", (64, 64), paper)
    ImageDraw.Draw(image).ellipse(box, outline=ink, width=5)
    image.save(path)


def test_predict_labels_own_images_and_reports_unreadable_ones(trained, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    draw(folder / "a_photo_like.jpg", dark_on_light=True, box=(16, 8, 48, 56))
    draw(folder / "b_off_centre.png", dark_on_light=False, box=(2, 2, 20, 26))
    (folder / "c_broken.png").write_bytes(b"\x89PNG not really")
    target = tmp_path / "labels.csv"
    result = run_cli("predict", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "last",
                     "--data.images", str(folder), "--submission.path", str(target), cwd=trained)
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(folder))]
    assert [line.split(":")[0] for line in lines] == [str(folder / "a_photo_like.jpg"), str(folder / "b_off_centre.png")]
    assert all("(probability " in line for line in lines)
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "c_broken.png" in skipped[0]
    table = pd.read_csv(target)
    assert list(table.columns) == ["file", "label", "probability"] and len(table) == 2


def test_export_onnx_scores_the_validation_split_as_validate_does(trained, tmp_path):
    import onnxruntime

    from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input

    output = tmp_path / "model.onnx"
    run_cli("export", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "best", "--output", str(output),
            cwd=trained)
    card = json.loads((tmp_path / "model.onnx.json").read_text())
    assert card["input"]["shape"] == ["batch", 1, 28, 28] and card["data_checksum"]["algorithm"] == "sha256"
    validated = run_cli("validate", "--config", "cnn.yaml", *tiny(trained / "data"), "--ckpt_path", "best", cwd=trained)
    data = KaggleDigitsDataModule(str(trained / "data"), val_fraction=0.1, split_seed=42)
    data.setup("validate")
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"images": to_model_input(data.val_set.images).numpy()})[0]
    accuracy = float((np.argmax(probabilities, 1) == data.val_set.labels.numpy()).mean())
    scored = float(re.search(r"val/acc\s*│\s*([0-9.]+)", validated.stdout).group(1))
    assert accuracy == pytest.approx(scored, abs=1e-6), "the exported file scores as validate does"
    assert card["val_accuracy"] == pytest.approx(scored, abs=1e-6), "the card records the run's best accuracy"
