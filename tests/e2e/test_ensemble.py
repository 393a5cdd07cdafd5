"""`ensemble` trains seeds one after another; validate/test/predict average checkpoints and shifts."""

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from lightning.pytorch import Trainer

from digit_recognizer.callbacks import InferenceAveraging
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.inference import load_network, shifted_views
from digit_recognizer.models import DigitCNN
from digit_recognizer.classifier import DigitClassifier

from helpers.cli import run_cli, workdir_args
from helpers.data import write_tiny_data
from helpers.runs import member


SHIFTS = "[[1,0],[-1,0],[0,1],[0,-1]]"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Tiny data and a finished 2-seed `ensemble`: lightning_logs/version_0 and version_1."""
    root = tmp_path_factory.mktemp("ensemble")
    write_tiny_data(root)
    result = run_cli("ensemble", "--seeds", "1", "2", *workdir_args(root, "--submission.path", str(root / "ensemble.csv")), cwd=root)
    (root / "ensemble.log").write_text(result.stdout)
    (root / "ensemble.err").write_text(result.stderr)
    return root


def test_ensemble_trains_each_seed_and_writes_one_submission(workdir):
    first, second = (torch.load(member(workdir, v), weights_only=False)["state_dict"] for v in (0, 1))
    assert not torch.equal(first["network.classifier.4.weight"], second["network.classifier.4.weight"]), \
        "two seeds must give two different networks"
    log = (workdir / "ensemble.log").read_text()
    assert "ensemble member (seed 1)" in log and "ensemble member (seed 2)" in log
    assert "args parameter is intended" not in (workdir / "ensemble.err").read_text(), \
        "the runs' own arguments are intended: no LightningCLI warning about sys.argv"
    submission = pd.read_csv(workdir / "ensemble.csv")
    assert submission["ImageId"].tolist() == list(range(1, 51)) and submission["Label"].between(0, 9).all()


def test_predict_returns_the_mean_probability_of_members_and_shifts(workdir):
    """In process: the probabilities predict_step returns are the average over the two members
    and the shifted copies, and the module gets its own network back afterwards."""
    first, second = str(member(workdir, 0)), str(member(workdir, 1))
    datamodule = KaggleDigitsDataModule(data_dir=str(workdir / "data"), download=False, cache_dir=str(workdir / "cache"))
    shifts = [(1, 0), (0, -2)]
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[InferenceAveraging(checkpoints=[second], shifts=shifts)])
    model = DigitClassifier()
    predicted = torch.cat(trainer.predict(model, datamodule=datamodule, ckpt_path=first))
    assert isinstance(model.network, DigitCNN)

    images = to_model_input(datamodule.predict_set.images)
    networks = [load_network(path, like=DigitCNN()).eval() for path in (first, second)]
    with torch.no_grad():
        expected = torch.stack([net(shifted_views(images, [shift])).softmax(1)
                                for net in networks for shift in [(0, 0), *shifts]]).mean(0)
    torch.testing.assert_close(predicted, expected)


def test_validate_scores_the_ensemble_and_the_shifts(workdir):
    first, second = str(member(workdir, 0)), str(member(workdir, 1))
    datamodule = KaggleDigitsDataModule(data_dir=str(workdir / "data"), download=False, cache_dir=str(workdir / "cache"))

    def val_loss(**ensemble) -> float:
        trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                          callbacks=[InferenceAveraging(**ensemble)])
        return trainer.validate(DigitClassifier(), datamodule=datamodule, ckpt_path=first, verbose=False)[0]["val/loss"]

    single = val_loss()
    assert val_loss(shifts=[(1, 0), (0, 1)]) != single, "validate must score the shifted copies"
    assert val_loss(checkpoints=[second]) != single, "validate must score both members"
    both = val_loss(checkpoints=[second], shifts=[(1, 0), (-1, 0), (0, 1), (0, -1)])

    result = run_cli("validate", *workdir_args(workdir, "--ckpt_path", first, "--inference.checkpoints", f"[{second}]",
                                      "--inference.shifts", SHIFTS), cwd=workdir)
    assert float(re.search(r"val/loss\s*│\s*([0-9.]+)", result.stdout).group(1)) == pytest.approx(both, abs=1e-5)


def test_a_checkpoint_of_another_network_is_a_one_line_error(workdir, tmp_path):
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"network.features.0.0.weight": torch.zeros(8, 1, 3, 3)}}, other)
    result = run_cli("predict", *workdir_args(workdir, "--ckpt_path", str(member(workdir, 0)), "--submission.path",
                                     str(tmp_path / "s.csv"), "--inference.checkpoints", f"[{other}]"), cwd=workdir, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.match(r"error: .*other.ckpt: not the same network", result.stderr.strip().splitlines()[-1])
    assert not (tmp_path / "s.csv").exists()


def test_ensemble_of_two_recipes_in_parallel_processes(tmp_path):
    """--recipes x --seeds members, two at a time in their own processes and run folders; the
    submission averages networks of different classes; each member's result is its own fit's."""
    write_tiny_data(tmp_path)
    target = tmp_path / "mixed.csv"
    args = [arg for arg in workdir_args(tmp_path, "--submission.path", str(target))]
    del args[:2]  # the recipes come from --recipes
    result = run_cli("ensemble", "--recipes", "cnn.yaml", "deotte.yaml", "--seeds", "1", "--parallel", "2", *args,
                     cwd=tmp_path)
    runs = sorted((tmp_path / "lightning_logs").glob("version_*"))
    assert [run.name for run in runs] == ["version_0", "version_1"]
    assert (tmp_path / "lightning_logs" / "ensemble_0" / "ensemble.json").is_file(), "the ensemble's own folder"
    assert all((run / "fit.log").is_file() and (run / "checkpoints" / "last.ckpt").is_file() for run in runs)
    classes = [torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["network"]["class_path"]
               for run in runs]
    assert sorted(classes) == ["digit_recognizer.models.DeotteCNN", "digit_recognizer.models.DigitCNN"]
    assert "ensemble member (seed 1, cnn.yaml)" in result.stdout and "ensemble member (seed 1, deotte.yaml)" in result.stdout
    assert len(pd.read_csv(target)) == 50
