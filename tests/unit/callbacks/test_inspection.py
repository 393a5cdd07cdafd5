"""ClassificationInspector in an in-process fit: the most confident mistakes, per-digit
precision-recall curves, the validation projector, the landing layout and the HParams table."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout
from tensorboard.plugins.hparams import metadata as hp_metadata

from digit_recognizer.callbacks import ClassificationInspector, EpochTimer
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.projector import penultimate_features
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.models import DeotteCNN

from helpers.data import random_digits, tiny_datamodule
from helpers.events import FN, FP, TN, TP, pr_curves, read_events, read_tsv


def logits_for(predicted: list[int], confidence_logit: list[float]) -> torch.Tensor:
    logits = torch.zeros(len(predicted), 10)
    logits[torch.arange(len(predicted)), torch.tensor(predicted)] = torch.tensor(confidence_logit)
    return logits


def test_inspector_keeps_the_most_confidently_wrong_images_across_batches():
    inspector = ClassificationInspector(num_mistakes=2)
    inspector._start(SimpleNamespace(device=torch.device("cpu")))
    batches = [  # (labels, predicted, logit of the predicted class)
        ([0, 1, 2], [7, 1, 8], [3.0, 9.0, 1.0]),  # two mistakes: 0->7 (confident), 2->8 (barely)
        ([3, 4], [5, 4], [6.0, 2.0]),              # 3->5, more confident than 0->7
    ]
    for i, (labels, predicted, logit) in enumerate(batches):
        images = torch.full((len(labels), 1, 28, 28), float(i))
        inspector._collect({"logits": logits_for(predicted, logit)}, [images, torch.tensor(labels)])
    kept = inspector.mistakes
    assert kept["labels"].tolist() == [3, 0] and kept["predicted"].tolist() == [5, 7]
    assert kept["confidence"][0] > kept["confidence"][1] > 0.1
    assert kept["images"][:, 0, 0, 0].tolist() == [1.0, 0.0]  # each image stays with its own label
    counts = inspector.confusion.compute()
    assert counts.sum() == 5 and counts[0, 7] == counts[2, 8] == counts[3, 5] == 1 and counts.trace() == 2


EMBEDDED = 15  # fewer than the tiny data's 20 validation images: the cap must hold


def fit(root: Path, data_dir: Path, inspector: ClassificationInspector, max_epochs: int = 2) -> tuple[Path, Trainer]:
    """A short in-process fit logging into root/tb/version_0, as the configs' TensorBoardLogger does."""
    logger = TensorBoardLogger(root, name="tb", version=0, default_hp_metric=False)
    trainer = Trainer(default_root_dir=root, limit_train_batches=3, num_sanity_val_steps=1, logger=logger,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      max_epochs=max_epochs, callbacks=[inspector, EpochTimer(), LearningRateMonitor("epoch")])
    trainer.fit(DigitClassifier(), tiny_datamodule(data_dir, root))
    return Path(logger.log_dir), trainer


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trainer]:
    root = tmp_path_factory.mktemp("tb_fit")
    folder = root / "data"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(200))
    return fit(root, folder, ClassificationInspector(embedding_images=EMBEDDED))


def test_each_digit_has_a_pr_curve_per_validation_epoch_counting_every_image(tiny_fit):
    run, trainer = tiny_fit
    val_labels = trainer.datamodule.val_set.labels
    curves = pr_curves(read_events(run))
    for digit, epochs in curves.items():
        assert len(epochs) == 2, "one per validation epoch; the sanity check writes none"
        for curve in epochs:
            assert curve.shape[0] == 6
            # At the lowest threshold every image is called positive: all of this digit's, and the rest.
            assert curve[TP, 0] + curve[FN, 0] == (val_labels == digit).sum().item()
            assert curve[TP, 0] + curve[FP, 0] + curve[TN, 0] + curve[FN, 0] == len(val_labels)
            assert curve[FP, 0] == len(val_labels) - (val_labels == digit).sum().item()
            assert np.all(np.diff(curve[TP]) <= 0), "fewer true positives at higher thresholds"


def test_the_projector_holds_the_final_networks_features_of_the_first_validation_images(tiny_fit):
    run, trainer = tiny_fit
    assert 'tensor_name: "val_embedding/epoch_2"' in (run / "projector_config.pbtxt").read_text()
    (folder,) = run.glob("val_embedding/*")
    assert folder.name == "epoch_2" and not list(run.glob("0*")), "named for the epoch, no step folder"
    val_set = trainer.datamodule.val_set
    images = to_model_input(val_set.images[:EMBEDDED])
    network = trainer.lightning_module.network
    expected_features, predicted = penultimate_features(network, images)
    features = np.array(read_tsv(folder / "tensors.tsv"), dtype=np.float32)
    assert features.shape == (EMBEDDED, 256)
    assert np.allclose(features, expected_features.numpy(), atol=1e-5)
    metadata = read_tsv(folder / "metadata.tsv")
    assert metadata[0] == ["label", "predicted"]
    assert [[int(v) for v in row] for row in metadata[1:]] == [
        [label, prediction] for label, prediction in zip(val_set.labels[:EMBEDDED].tolist(), predicted.tolist())]
    sprite = np.array(Image.open(folder / "sprite.png"))
    assert sprite.shape[:2] == (4 * 28, 4 * 28)  # 15 thumbnails in a 4 x 4 grid
    first = torch.from_numpy(sprite[:28, :28, 0] if sprite.ndim == 3 else sprite[:28, :28])
    assert (first.float() - val_set.images[0].float()).abs().max() <= 1, "the thumbnails are the images"


def test_both_can_be_turned_off(tiny_data: Path, tmp_path: Path):
    run, _ = fit(tmp_path, tiny_data, ClassificationInspector(pr_curves=False, embedding_images=0), max_epochs=1)
    tags = read_events(run).Tags()["tensors"]
    assert not [tag for tag in tags if "pr_curve" in tag]
    assert "val_confusion_matrix/raw_counts" in tags, "the rest is still written"
    assert not (run / "projector_config.pbtxt").exists() and not (run / "val_embedding").exists()


def session_hparams(events: EventAccumulator) -> dict:
    content = events.SummaryMetadata(hp_metadata.SESSION_START_INFO_TAG).plugin_data.content
    return dict(hp_metadata.parse_session_start_info_plugin_data(content).hparams)


def test_the_landing_layout_puts_train_and_val_loss_on_one_chart(tiny_fit):
    events = read_events(tiny_fit[0])
    layout = Layout.FromString(make_ndarray(events.Tensors("custom_scalars__config__")[0].tensor_proto).item())
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    titles = list(charts)
    assert titles[0].startswith("loss") and charts[titles[0]] == ["train/loss$", "val/loss$"]
    assert charts[titles[1]] == ["train/acc$", "val/acc$", "val/acc_best$"]
    assert any(tags == ["lr-"] for tags in charts.values())
    per_digit = [tags for title, tags in charts.items() if title.endswith("per digit")]
    assert per_digit == [[r"val_precision/\d$"], [r"val_recall/\d$"], [r"val_f1/\d$"]]
    scalars = events.Tags()["scalars"]
    for tags in charts.values():  # every chart has lines, and a per-digit chart exactly ten
        matched = [tag for tag in scalars if any(re.match(pattern, tag) for pattern in tags)]
        assert matched, tags
        if tags in per_digit:
            assert len(matched) == 10


def test_hparams_hold_the_recipes_choices_and_val_acc_best_as_metric(tiny_fit):
    events = read_events(tiny_fit[0])
    hparams = session_hparams(events)
    for gone in ("data_dir", "test_csv", "cache_dir", "num_workers", "predict_csv", "images", "download",
                 "channels_last", "compile"):
        assert not [key for key in hparams if gone in key], gone
    assert hparams["data.augment"].WhichOneof("kind") == "bool_value" and hparams["data.augment"].bool_value
    assert all(value.WhichOneof("kind") for value in hparams.values()), "nothing None"
    assert hparams["model.network"].string_value == "DigitCNN"
    assert hparams["model.network.args"].string_value == "defaults"
    content = events.SummaryMetadata(hp_metadata.EXPERIMENT_TAG).plugin_data.content
    experiment = hp_metadata.parse_experiment_plugin_data(content)
    assert [m.name.tag for m in experiment.metric_infos][:2] == ["val/acc_best", "val/loss"]
    assert sorted(info.name for info in experiment.hparam_infos) == sorted(hparams)
    assert "hp_metric" not in events.Tags()["scalars"]


def test_a_run_without_validation_says_so_and_has_the_same_columns(tiny_fit, tiny_data: Path, tmp_path: Path):
    """Another network, no validation split: a text card, the same layout, the same HParams keys."""
    logger = TensorBoardLogger(tmp_path, name="tb", version=0, default_hp_metric=False)
    trainer = Trainer(default_root_dir=tmp_path, limit_train_batches=2, logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, max_epochs=1,
                      callbacks=[ClassificationInspector(embedding_images=0)])
    trainer.fit(DigitClassifier(network=DeotteCNN(dropout=0.3)), tiny_datamodule(tiny_data, tmp_path, val_fraction=0.0))
    events = read_events(Path(logger.log_dir))
    (note,) = events.Tensors("about/no_validation/text_summary")
    assert "no validation split" in make_ndarray(note.tensor_proto).item().decode()
    assert "custom_scalars__config__" in events.Tags()["tensors"]
    assert not [tag for tag in events.Tags()["scalars"] if tag.startswith("val")]
    hparams, with_validation = session_hparams(events), session_hparams(read_events(tiny_fit[0]))
    assert set(hparams) == set(with_validation), "ensemble members compare in one table"
    assert hparams["model.network"].string_value == "DeotteCNN"
    assert hparams["model.network.args"].string_value == "defaults"  # built in Python, not from a config
    assert hparams["data.val_fraction"].number_value == 0


def test_images_fit_a_time_series_card_at_its_default_size(tiny_fit):
    """A card fits its image into about 390 x 215 pixels: bigger images shrink until unreadable."""
    events = read_events(tiny_fit[0])
    images = events.Tags()["images"]
    by_digit = [tag for tag in images if tag.startswith("val_mistakes_by_digit/")]
    assert by_digit, "the tiny run makes mistakes"
    for tag in ["val_confusion_matrix/counts", "val_confusion_matrix/normalized", *by_digit]:
        image = events.Images(tag)[-1]
        assert image.width <= 430 and image.height <= 215, (tag, image.width, image.height)


def test_older_checkpoints_best_accuracy_is_ignored():
    inspector = ClassificationInspector()
    inspector.load_state_dict({"best_accuracy": 0.99})
    assert inspector.state_dict() == {} and not hasattr(inspector, "best_accuracy")
