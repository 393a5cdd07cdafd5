"""What a run leaves for TensorBoard and for `report`: tags, values, counts, PNGs, a live server."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from torchvision.io import decode_png, read_file

from digit_recognizer.main import main
from digit_recognizer.report import CONFUSION_FILE, CURVES_FILE, MISTAKES_FILE, read_events as read_run, write_report

from helpers.cli import run_cli, tiny_run_args
from helpers.data import write_tiny_data
from helpers.events import confusion_counts, read_events
from helpers.inspection import VAL_SIZE, run_args, write_train_csv


PER_CLASS = ("precision", "recall", "f1")
CURVES_SIZE = (450, 1100)  # (height, width): figsize x dpi in figures.py
CONFUSION_SIZE = (330, 340)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short epochs of `fit`, then `test` of its last checkpoint into the same run folder."""
    tmp = tmp_path_factory.mktemp("tiny_run")
    write_train_csv(tmp / "data")
    run_cli("fit", *run_args(tmp, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1"), cwd=tmp)
    run_cli("test", *run_args(tmp, "--ckpt_path", "last"), cwd=tmp)
    return tmp / "lightning_logs" / "version_0"


def test_event_files_hold_every_tag_with_finite_in_range_values(tiny_run):
    events = read_events(tiny_run)
    scalars = set(events.Tags()["scalars"])
    per_class = {f"{stage}_{name}/{digit}" for stage in ("val", "test") for name in PER_CLASS for digit in range(10)}
    expected = {"train/loss", "train/loss_step", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc",
                "lr-RMSprop", "time/epoch_seconds", "time/images_per_second", "val/acc_best", *per_class}
    assert expected <= scalars, expected - scalars
    for tag in expected:
        values = [e.value for e in events.Scalars(tag)]
        assert values and all(math.isfinite(v) for v in values), tag
        if tag.endswith("acc") or tag.split("_")[-1].startswith(PER_CLASS) or tag == "val/acc_best":
            assert all(0 <= v <= 1 for v in values), (tag, values)
        else:  # losses, learning rate, times
            assert all(v > 0 for v in values), (tag, values)
    assert (tiny_run / "config.yaml").is_file()  # LightningCLI saves the run's full configuration beside it
    assert len(events.Scalars("val/acc")) == 2 and len(events.Scalars("time/epoch_seconds")) == 2
    assert len(events.Scalars("train/loss_step")) >= 3  # per step, not only per epoch
    best = max(e.value for e in events.Scalars("val/acc"))
    assert events.Scalars("val/acc_best")[-1].value == pytest.approx(best)
    assert "hp_metric" not in scalars and "epoch" not in scalars, "no copy of val/acc_best; the epoch counter is trainer/epoch"
    assert max(e.value for e in events.Scalars("trainer/epoch")) == 1  # epochs 0 and 1 (a later `test` logs 0)
    assert {"val_confusion_matrix/counts", "val_confusion_matrix/normalized", "val/most_confident_mistakes",
            "test_confusion_matrix/counts", "test_confusion_matrix/normalized"} <= set(events.Tags()["images"])


def test_epoch_images_pr_curves_and_per_class_scores_share_the_epoch_metrics_step(tiny_run):
    events = read_events(tiny_run)
    epoch_steps = [e.step for e in events.Scalars("val/acc")]
    assert epoch_steps == [e.step for e in events.Scalars("train/loss")] == [e.step for e in events.Scalars("val/acc_best")]
    for tag in ("val_f1/3", "val_precision/0", "val_recall/9"):
        assert [e.step for e in events.Scalars(tag)] == epoch_steps, tag
    for tag in ("val_confusion_matrix/counts", "val/most_confident_mistakes", "val_mistakes_by_digit/0"):
        assert [e.step for e in events.Images(tag)] == epoch_steps, tag
    assert [e.step for e in events.Tensors("val_pr_curve/5")] == epoch_steps


def test_step_loss_is_logged_on_every_step_lightning_writes(tmp_path: Path):
    """The module logs `train/loss_step` only on the steps Lightning writes (log_every_n_steps),
    so none may go missing: 2 epochs of 3 steps, every 2nd step written."""
    write_train_csv(tmp_path / "data")
    run_cli("fit", *run_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "2"), cwd=tmp_path)
    events = read_events(tmp_path / "lightning_logs" / "version_0")
    assert [e.step for e in events.Scalars("train/loss_step")] == [1, 3, 5]
    assert len(events.Scalars("train/loss")) == len(events.Scalars("train/acc")) == 2  # one per epoch


def test_confusion_matrix_counts_every_validation_image_once(tiny_run):
    events = read_events(tiny_run)
    val_counts = confusion_counts(events)
    assert len(val_counts) == 2  # one per validation epoch
    expected_rows = [3] + [2] * 9  # the stratified split's class sizes
    for counts, accuracy in zip(val_counts, events.Scalars("val/acc")):
        assert counts.sum(dim=1).tolist() == expected_rows
        assert counts.trace().item() / VAL_SIZE == pytest.approx(accuracy.value, abs=1e-6)
    test_counts = confusion_counts(events, "test")[-1]
    assert test_counts.sum(dim=1).tolist() == expected_rows  # `test` defaults to the validation split


def test_fit_writes_readable_pngs_of_the_expected_size(tiny_run, tmp_path):
    for name, size in ((CURVES_FILE, CURVES_SIZE), (CONFUSION_FILE, CONFUSION_SIZE)):
        image = decode_png(read_file(str(tiny_run / name)))  # written by ReportWriter at the end of fit
        assert tuple(image.shape[1:]) == size, name
        assert image.float().std() > 10, f"{name} is blank"
    written = write_report(tiny_run, tmp_path / "figures")
    assert [p.name for p in written] == [CURVES_FILE, CONFUSION_FILE, MISTAKES_FILE]
    for path in written:
        assert decode_png(read_file(str(path))).shape == decode_png(read_file(str(tiny_run / path.name))).shape
    fit_events = read_run(tiny_run)[0]  # the fit's validation grid; the later test's file has test/ only
    logged = fit_events.Images("val/most_confident_mistakes")[-1].encoded_image_string
    assert (tmp_path / "figures" / MISTAKES_FILE).read_bytes() == logged, "the grid exactly as TensorBoard shows it"
    assert (tiny_run / MISTAKES_FILE).read_bytes() == logged, "written by ReportWriter at the end of fit"


def test_report_command_and_its_errors(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    main(["report", str(tiny_run), "--output-dir", str(out)])
    assert (out / CURVES_FILE).is_file() and (out / CONFUSION_FILE).is_file() and (out / MISTAKES_FILE).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((empty, "no TensorBoard event files"), (tmp_path / "missing", "no such run folder")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["report", str(folder)])
        assert exited.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {folder}: {message}"), lines
    assert not list(empty.iterdir()), "report must not write anything for a folder without events"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, post: dict | None = None) -> dict:
    data = None if post is None else json.dumps(post).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_tensorboard_server_has_every_plugins_data_for_the_run(tiny_run):
    """A real TensorBoard, asked through its HTTP data API, as its pages ask it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tiny_run.parent), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base, run = f"http://127.0.0.1:{port}/data/plugin", tiny_run.name
    try:
        deadline, scalars = time.monotonic() + 60, {}
        while time.monotonic() < deadline and "val/acc" not in scalars.get(run, {}):
            assert server.poll() is None, server.stderr.read()
            try:
                scalars = get_json(f"{base}/scalars/tags")
            except OSError:  # not listening yet
                pass
            time.sleep(0.5)
        assert {"train/loss", "val/acc", "val/acc_best", "time/images_per_second", "val_f1/0"} <= set(scalars[run])
        assert "hp_metric" not in scalars[run]
        layout = get_json(f"{base}/custom_scalars/layout")
        charts = {chart["title"]: chart["multiline"]["tag"] for category in layout["category"] for chart in category["chart"]}
        loss = next(tags for title, tags in charts.items() if title.startswith("loss"))
        assert loss == ["train/loss$", "val/loss$"]
        lines = get_json(f"{base}/custom_scalars/scalars?run={run}&tag=" + urllib.parse.quote("val/loss$|train/loss$"))
        assert set(lines["tag_to_events"]) == {"train/loss", "val/loss"}
        images = get_json(f"{base}/images/tags")[run]
        assert {"val_confusion_matrix/counts", "val_confusion_matrix/normalized", "val/most_confident_mistakes"} <= set(images)
        assert {f"val_pr_curve/{digit}" for digit in range(10)} <= set(get_json(f"{base}/pr_curves/tags")[run])
        assert run in get_json(f"{base}/projector/runs")
        config = get_json(f"{base}/projector/info?run={run}")
        assert [e["tensorName"] for e in config["embeddings"]] == ["val_embedding/epoch_2"]
        request = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"], "colParams": [],
                   "startIndex": 0, "sliceSize": 10}
        experiment = get_json(f"{base}/hparams/experiment", {"experimentName": ""})
        assert [m["name"]["tag"] for m in experiment["metricInfos"]][:2] == ["val/acc_best", "val/loss"]
        (group,) = get_json(f"{base}/hparams/session_groups", request)["sessionGroups"]
        hparams = group["hparams"]
        assert {"data.batch_size", "model.network", "model.network.args", "model.label_smoothing", "model.optimizer",
                "model.optimizer.lr", "model.scheduler", "trainer.max_epochs", "seed_everything"} <= set(hparams)
        assert hparams["model.optimizer.lr"] == pytest.approx(1e-3) and hparams["trainer.max_epochs"] == 2
        assert hparams["data.augment"] is True and hparams["model.network"] == "DigitCNN"
        best = max(e.value for e in read_events(tiny_run).Scalars("val/acc"))
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert metrics["val/acc_best"] == pytest.approx(best)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_report_writes_the_projector_embedding_of_a_run_that_has_none(tmp_path):
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
