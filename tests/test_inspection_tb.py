"""TensorBoard beyond scalars: per-digit precision-recall curves and the validation projector."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout
from tensorboard.plugins.hparams import metadata as hp_metadata
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from conftest import random_digits, run_cli, tiny_datamodule, tiny_run_args
from digit_recognizer.callbacks import ClassificationInspector, EpochTimer
from digit_recognizer.projector import penultimate_features, write_embedding
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.inference import AveragedNetworks
from digit_recognizer.models import DeotteCNN, DigitCNN
from digit_recognizer.classifier import DigitClassifier

EMBEDDED = 15  # fewer than the tiny data's 20 validation images: the cap must hold
TP, FP, TN, FN = range(4)  # rows of a PR-curve tensor (then precision and recall)


def fit(root: Path, data_dir: Path, inspector: ClassificationInspector, max_epochs: int = 2) -> tuple[Path, Trainer]:
    """A short in-process fit logging into root/tb/version_0, as the configs' TensorBoardLogger does."""
    logger = TensorBoardLogger(root, name="tb", version=0, default_hp_metric=False)
    trainer = Trainer(default_root_dir=root, limit_train_batches=3, num_sanity_val_steps=1, logger=logger,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      max_epochs=max_epochs, callbacks=[inspector, EpochTimer(), LearningRateMonitor("epoch")])
    trainer.fit(DigitClassifier(), tiny_datamodule(data_dir, root))
    return Path(logger.log_dir), trainer


def read_events(run: Path) -> EventAccumulator:
    return EventAccumulator(str(run), size_guidance={"tensors": 0, "scalars": 0, "images": 0}).Reload()


def pr_curves(events: EventAccumulator, stage: str = "val") -> dict[int, list[np.ndarray]]:
    return {digit: [make_ndarray(e.tensor_proto) for e in events.Tensors(f"{stage}_pr_curve/{digit}")]
            for digit in range(10)}


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


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


def dense_activations(network: DigitCNN, images: torch.Tensor) -> torch.Tensor:
    """DigitCNN's 256 activations before its output layer, by hand."""
    with torch.no_grad():
        return network.classifier[:-1](network.features(images))


def test_write_embedding_takes_csv_images_caps_them_and_restores_the_network(tmp_path: Path):
    torch.manual_seed(0)
    network = DigitCNN().train()
    images, labels = random_digits(8)
    with SummaryWriter(tmp_path) as writer:
        assert write_embedding(writer, network, images, labels, max_images=5, global_step=12, tag="mine") == 5
    assert network.training and all(module.training for module in network.modules())
    folder = tmp_path / "00012" / "mine"
    features = np.array(read_tsv(folder / "tensors.tsv"), dtype=np.float32)
    expected = dense_activations(network.eval(), to_model_input(images[:5]))
    assert np.allclose(features, expected.numpy(), atol=1e-5)
    assert [row[0] for row in read_tsv(folder / "metadata.tsv")[1:]] == [str(v) for v in labels[:5].tolist()]


def test_an_ensemble_shows_its_last_networks_features_of_the_unshifted_images():
    torch.manual_seed(0)
    first, last = DigitCNN(), DigitCNN()
    images = to_model_input(random_digits(6)[0])
    features, predicted = penultimate_features(AveragedNetworks([first, last], shifts=[[1, 0], [0, 1]]), images,
                                               batch_size=4)
    assert torch.allclose(features, dense_activations(last.eval(), images), atol=1e-6)
    with torch.no_grad():
        ensemble = AveragedNetworks([first, last], shifts=[[1, 0], [0, 1]]).eval()
        assert predicted.tolist() == ensemble(images).argmax(dim=1).tolist()


def test_a_network_without_a_linear_layer_is_a_value_error():
    with pytest.raises(ValueError, match="no nn.Linear"):
        penultimate_features(nn.Sequential(nn.Flatten()), torch.zeros(2, 1, 28, 28))


@pytest.mark.slow
def test_ddp_pr_curves_count_each_validation_image_once(tmp_path: Path):
    """Two CPU processes with 11 and 10 validation images: the gather must cut each one's padding."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(210))
    run_cli("fit", *tiny_run_args(folder, "--data.cache_dir", str(tmp_path / "cache"), "--data.batch_size", "8",
                                  "--trainer.strategy", "ddp", "--trainer.devices", "2",
                                  "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "2"), cwd=tmp_path)
    run = tmp_path / "lightning_logs" / "version_0"
    for digit, (curve,) in pr_curves(read_events(run)).items():
        assert curve[TP, 0] + curve[FN, 0] == (3 if digit == 0 else 2)  # the stratified split's class sizes
        assert curve[TP, 0] + curve[FP, 0] + curve[TN, 0] + curve[FN, 0] == 21
    (folder,) = run.glob("val_embedding/*")
    assert len(read_tsv(folder / "tensors.tsv")) == 11  # rank zero's share of the validation images


@pytest.mark.slow
def test_report_writes_the_projector_embedding_of_a_run_that_has_none(tmp_path):
    from conftest import run_cli, tiny_run_args, write_tiny_data

    write_tiny_data(tmp_path)
    run_cli("fit", *tiny_run_args(tmp_path / "data", "--inspection.embedding_images", "0"), cwd=tmp_path)
    run = tmp_path / "lightning_logs" / "version_0"
    assert not (run / "projector_config.pbtxt").exists()
    result = run_cli("report", str(run), cwd=tmp_path)
    assert f"wrote the projector embedding of 20 validation images into {run}" in result.stdout
    config = (run / "projector_config.pbtxt").read_text()
    assert "val_embedding" in config and "metadata.tsv" in config and "sprite.png" in config
    metadata = (run / "val_embedding" / "epoch_1" / "metadata.tsv").read_text().splitlines()
    assert metadata[0].split("\t") == ["label", "predicted"] and len(metadata) == 21
