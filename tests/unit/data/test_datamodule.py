"""The DataModule: its split and batches, the batch transfer, folds and bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.errors import DataError
from digit_recognizer.data.split import stratified_fold

from helpers.data import random_digits, tiny_datamodule
from helpers.errors import raises_one_line


# -- DataModule ---------------------------------------------------------------------------------

def datamodule(data_dir: Path, **kwargs) -> KaggleDigitsDataModule:
    return KaggleDigitsDataModule(data_dir=str(data_dir), download=False, batch_size=32, **kwargs)


def test_datamodule_splits_and_batches(tiny_data):
    dm = datamodule(tiny_data)
    dm.setup("fit")
    assert len(dm.train_set) == 180 and len(dm.val_set) == 20
    images, labels, rows = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 28, 28) and labels.dtype == torch.int64
    dm.setup("predict")
    assert len(dm.predict_set) == 50


def test_datamodule_val_fraction_zero_has_no_validation(tiny_data):
    dm = datamodule(tiny_data, val_fraction=0.0)
    dm.setup("fit")
    assert len(dm.train_set) == 200 and dm.val_dataloader() == []


def test_batch_transfer_scales_and_augments_only_in_training(tiny_data):
    class FakeTrainer:
        training = False

    dm = datamodule(tiny_data)
    dm.trainer = FakeTrainer()
    batch = [random_digits(4)[0], torch.zeros(4, dtype=torch.long)]
    plain = dm.on_after_batch_transfer(batch, 0)[0]
    assert plain.shape == (4, 1, 28, 28) and torch.equal(plain, to_model_input(batch[0]))
    FakeTrainer.training = True
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)


def test_batch_transfer_mixes_images_and_labels_only_in_training(tiny_data):
    class FakeTrainer:
        training = False

    dm = datamodule(tiny_data, mixup_alpha=0.4, rotation_degrees=0, zoom=0, shift=0)
    dm.trainer = FakeTrainer()
    batch = [random_digits(4)[0], torch.tensor([0, 1, 2, 3])]
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[1], batch[1])
    FakeTrainer.training = True
    images, targets = dm.on_after_batch_transfer(batch, 0)
    assert targets.shape == (4, 10) and not torch.equal(images, to_model_input(batch[0]))
    unmixed = datamodule(tiny_data, mixup_alpha=0.4, augment=False)
    unmixed.trainer = FakeTrainer()
    assert torch.equal(unmixed.on_after_batch_transfer(batch, 0)[1], batch[1]), "augment false: no mixing"


def test_bad_val_fraction_is_rejected(tiny_data):
    with raises_one_line(DataError, match="val_fraction"):
        datamodule(tiny_data, val_fraction=1.0)


@pytest.mark.parametrize(("settings", "message"), [
    ({"folds": 1}, r"data.folds must be 0 \(off\) or at least 2, got 1"),
    ({"folds": 5, "fold": 5}, r"data.fold must be in 0..4 for 5 folds, got 5"),
    ({"folds": 5, "fold": -1}, r"data.fold must be in 0..4 for 5 folds, got -1"),
    ({"folds": 5, "val_fraction": 0.1}, r"data.folds 5 chooses the validation rows: set data.val_fraction 0"),
])
def test_bad_fold_settings_are_one_line(tmp_path, settings, message):
    with raises_one_line(DataError, match=message):
        tiny_datamodule(tmp_path, tmp_path, **{"val_fraction": 0.0, **settings})


def test_more_folds_than_a_digit_has_rows_is_one_line_naming_the_file(tiny_data, tmp_path):
    data = tiny_datamodule(tiny_data, tmp_path, val_fraction=0.0, folds=25, fold=0)  # 20 rows of each digit
    with raises_one_line(DataError, match=r"train.csv: data.folds 25 is more than the smallest class has rows \(20\)"):
        data.setup("fit")


def test_the_fold_is_what_the_data_module_validates_on(tiny_data, tmp_path):
    data = tiny_datamodule(tiny_data, tmp_path, val_fraction=0.0, folds=4, fold=2)
    data.setup("fit")
    expected = stratified_fold(torch.arange(200) % 10, 4, 2, seed=42)[1]
    assert torch.equal(data.val_set.rows.sort().values, expected) and len(data.train_set) == 150
