"""The benchmark scripts: their arithmetic, and the accuracy script end to end on tiny data and made-up networks."""

import importlib.util
from pathlib import Path

import pytest
import torch

from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.models import DigitCNN

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shared_mistake_counts_counts_networks_per_wrong_image():
    shared_mistakes = load_script("shared_mistakes")
    labels = torch.tensor([0, 1, 2, 3, 4])
    predictions = torch.tensor([
        [0, 7, 2, 8, 4],  # wrong on images 1 and 3
        [0, 7, 2, 3, 4],  # wrong on image 1
        [9, 7, 2, 3, 4],  # wrong on images 0 and 1
    ])
    # image 1: all three networks; images 0 and 3: one network each; images 2 and 4: none
    assert shared_mistakes.shared_mistake_counts(predictions, labels) == {3: 1, 1: 2}


def test_seed_accuracy_summary_judges_the_mean_against_the_goal():
    seed_accuracy = load_script("seed_accuracy")
    assert seed_accuracy.summary([4186, 4184, 4182], 4200, 0.996) == \
        "4,186 / 4,184 / 4,182 correct: 0.99619 ± 0.00048, goal met"
    assert seed_accuracy.summary([4184, 4179, 4179], 4200, 0.996).endswith(
        "0.99540 ± 0.00069, goal not met (2.5 images short on average)")


def save_network_checkpoint(path: Path, seed: int, val_fraction: float = 0.1, split_seed: int = 42) -> DigitCNN:
    """A checkpoint as the package writes it, as far as the script reads it: weights and the split."""
    torch.manual_seed(seed)
    network = DigitCNN()
    torch.save({"state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
                "datamodule_hyper_parameters": {"val_fraction": val_fraction, "split_seed": split_seed}}, path)
    return network.eval()


def test_seed_accuracy_scores_each_network_on_its_held_out_rows(tiny_data, tmp_path, capsys):
    seed_accuracy = load_script("seed_accuracy")
    networks = [save_network_checkpoint(tmp_path / f"{seed}.ckpt", seed) for seed in (1, 2)]
    seed_accuracy.main(["--data-dir", str(tiny_data), str(tmp_path / "1.ckpt"), str(tmp_path / "2.ckpt")])
    data = KaggleDigitsDataModule(str(tiny_data), download=False, val_fraction=0.1, split_seed=42)
    data.setup("validate")
    images, labels = to_model_input(data.val_set.images), data.val_set.labels
    with torch.no_grad():
        expected = [int((network(images).argmax(-1) == labels).sum()) for network in networks]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "validation split: val_fraction 0.1, split_seed 42, 20 images"
    assert lines[1].startswith(f"one view: {expected[0]} / {expected[1]} correct: ")
    assert lines[2].startswith("with shifts [[1, 0], [-1, 0], [0, 1], [0, -1]]: ")
    assert all("; ensemble of all 2: " in line for line in lines[1:])


@pytest.mark.parametrize("second, message", [
    ({"split_seed": 1}, "2.ckpt: held out val_fraction 0.1, split_seed 1, but "),
    ({"val_fraction": 0.0}, "2.ckpt: held out val_fraction 0.0, split_seed 42, but "),
])
def test_seed_accuracy_refuses_networks_of_another_split(tiny_data, tmp_path, capsys, second, message):
    seed_accuracy = load_script("seed_accuracy")
    save_network_checkpoint(tmp_path / "1.ckpt", 1)
    save_network_checkpoint(tmp_path / "2.ckpt", 2, **second)
    with pytest.raises(SystemExit) as exit_info:
        seed_accuracy.main(["--data-dir", str(tiny_data), str(tmp_path / "1.ckpt"), str(tmp_path / "2.ckpt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_seed_accuracy_refuses_a_network_without_held_out_rows(tiny_data, tmp_path, capsys):
    seed_accuracy = load_script("seed_accuracy")
    save_network_checkpoint(tmp_path / "all.ckpt", 1, val_fraction=0.0)
    with pytest.raises(SystemExit):
        seed_accuracy.main(["--data-dir", str(tiny_data), str(tmp_path / "all.ckpt")])
    assert "all.ckpt: trained on every row (val_fraction 0), so no rows are held out" in capsys.readouterr().err
