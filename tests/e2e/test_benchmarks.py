"""The thin benchmark scripts over digit_recognizer.evaluation, run as a user runs them, on tiny
data and made-up networks."""

import subprocess
import sys

import pandas as pd
import pytest
import torch

from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input

from helpers.checkpoints import save_network_checkpoint
from helpers.cli import run_cli, tiny_run_args
from helpers.paths import RECIPES, REPO


BENCHMARKS = REPO / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True)


def test_seed_accuracy_scores_each_network_on_its_held_out_rows(tiny_data, tmp_path):
    networks = [save_network_checkpoint(tmp_path / f"{seed}.ckpt", seed) for seed in (1, 2)]
    result = run_script("seed_accuracy", "--data-dir", str(tiny_data), str(tmp_path / "1.ckpt"), str(tmp_path / "2.ckpt"),
                        "--ensemble-goal", "0")
    data = KaggleDigitsDataModule(str(tiny_data), download=False, val_fraction=0.1, split_seed=42)
    data.setup("validate")
    images, labels = to_model_input(data.val_set.images), data.val_set.labels
    with torch.no_grad():
        expected = [int((network(images).argmax(-1) == labels).sum()) for network in networks]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "validation split: val_fraction 0.1, split_seed 42, 20 images"
    assert lines[1].startswith(f"one view: {expected[0]} / {expected[1]} correct: ")
    assert lines[2].startswith("with shifts [[1, 0], [-1, 0], [0, 1], [0, -1]]: ")
    assert all("; ensemble of all 2: " in line and line.endswith(", goal met") for line in lines[1:])


@pytest.mark.parametrize("second, message", [
    ({"split_seed": 1}, "2.ckpt: held out val_fraction 0.1, split_seed 1, but "),
    ({"val_fraction": 0.0}, "2.ckpt: held out val_fraction 0.0, split_seed 42, but "),
])
def test_seed_accuracy_refuses_networks_of_another_split(tiny_data, tmp_path, second, message):
    save_network_checkpoint(tmp_path / "1.ckpt", 1)
    save_network_checkpoint(tmp_path / "2.ckpt", 2, **second)
    result = run_script("seed_accuracy", "--data-dir", str(tiny_data), str(tmp_path / "1.ckpt"), str(tmp_path / "2.ckpt"))
    assert result.returncode == 2
    err = result.stderr
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_batch_norm_statistics_scores_one_average_with_each_choice_of_statistics(tiny_data, tmp_path):
    run_cli("fit", *tiny_run_args(tiny_data, "--config", str(RECIPES / "deotte.yaml"), "--trainer.max_epochs", "2",
                                  "--data.val_fraction", "0.2", "--model.network.init_args.width", "4"), cwd=tmp_path)
    path = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    result = run_script("batch_norm_statistics", "--data-dir", str(tiny_data), str(path))
    assert result.returncode == 0, result.stderr
    scores = dict(line.removeprefix(f"{path}: ").split(": ") for line in result.stdout.splitlines())
    assert list(scores) == ["as saved", "Lightning's averaged statistics", "measured on 5,000 training rows",
                            "measured on all training rows", "measured on all training rows, augmented",
                            "the last weights, no average"]
    # fewer than 5,000 training rows: the run measured on all of them, as the script does
    assert scores["as saved"] == scores["measured on 5,000 training rows"] == scores["measured on all training rows"]
    assert all(score.endswith("correct of 40 (one view / with the one-pixel shifts)") for score in scores.values())


def test_batch_norm_statistics_refuses_a_network_without_an_average_in_one_line(tiny_data, tmp_path):
    save_network_checkpoint(tmp_path / "1.ckpt", 1)
    result = run_script("batch_norm_statistics", "--data-dir", str(tiny_data), str(tmp_path / "1.ckpt"))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / '1.ckpt'}: no weight average in this checkpoint (SWA had not begun, or the run had none)\n"


def test_compare_oof_pairs_two_recipes_on_the_same_rows(tmp_path):
    """Rows only A gets right (b) against rows only B gets right (c), and McNemar's exact p on them."""
    lines, labels = list(range(2, 102)), [i % 10 for i in range(100)]
    predicted_a = [label if i >= 10 else (label + 1) % 10 for i, label in enumerate(labels)]  # rows 0-9 wrong
    predicted_b = [label if i not in range(10, 12) else (label + 1) % 10 for i, label in enumerate(labels)]
    for name, predicted in (("a.csv", predicted_a), ("b.csv", predicted_b)):
        pd.DataFrame({"line": lines, "label": labels, "predicted": predicted, "fold": 0}).to_csv(tmp_path / name, index=False)
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_oof.py"), str(tmp_path / "a.csv"),
                             str(tmp_path / "b.csv")], capture_output=True, text=True, timeout=120, check=True)
    assert "A " in result.stdout and "0.90000" in result.stdout and "0.98000" in result.stdout
    assert "rows only A gets right: 2, only B: 10; McNemar's exact p = 0.0386 (a real difference)" in result.stdout
    pd.DataFrame({"line": lines[:50], "label": labels[:50], "predicted": labels[:50], "fold": 0}).to_csv(
        tmp_path / "short.csv", index=False)
    other = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_oof.py"), str(tmp_path / "a.csv"),
                            str(tmp_path / "short.csv")], capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "do not hold the same rows" in other.stderr
