"""A run's figures as PNGs, read back from its TensorBoard events (`report RUN_DIR` and, at the end
of `fit`, ReportWriter), and its projector embedding when it has none.

loss_and_accuracy_curves.png comes from the per-epoch loss and accuracy scalars,
confusion_matrix.png from the newest validation (else test) confusion-matrix counts that
ClassificationInspector logged, most_confident_mistakes.png is its newest grid of wrongly
classified images, as logged. TensorBoard's own EventAccumulator reads the event files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from digit_recognizer import figures
from digit_recognizer.checkpoints import holds_rows_out, read_checkpoint, recorded_data_dir, recorded_split
from digit_recognizer.data.datamodule import KaggleDigitsDataModule
from digit_recognizer.names import CONFUSION_COUNTS_TAG, EPOCH_TAG, LAST, MISTAKES_TAG, STAGE_NAMES
from digit_recognizer.errors import UserError
from digit_recognizer.files import atomic_path
from digit_recognizer.inference import network_from_checkpoint
from digit_recognizer.projector import write_embedding_into

CURVES_FILE = "loss_and_accuracy_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
MISTAKES_FILE = "most_confident_mistakes.png"
SERIES = {"training": "train", "validation": "val"}


def read_events(run_dir: Path) -> list[EventAccumulator]:
    """Each event file of `run_dir`, oldest first: one per `fit`, `validate` or `test` process."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    files = sorted(run_dir.glob("events.out.tfevents.*"))  # the name's timestamp orders them
    if not files:
        raise UserError(f"{run_dir}: no TensorBoard event files (events.out.tfevents.*); "
                        "give a run folder such as lightning_logs/version_0")
    guidance = {"scalars": 0, "tensors": 0, "images": 1}
    return [EventAccumulator(str(path), size_guidance=guidance).Reload() for path in files]


def epoch_curves(runs: list[EventAccumulator], metric: str) -> dict[str, figures.Curve]:
    """{"training": (epochs, values), "validation": ...} for "loss" or "acc", epochs counted from 1.

    Only `fit` files count (those with training scalars): `validate` logs its val/acc at step 0.
    """
    points: dict[str, dict[int, float]] = {label: {} for label in SERIES}
    for events in runs:
        scalars = set(events.Tags()["scalars"])
        epoch_tag = EPOCH_TAG if EPOCH_TAG in scalars else "epoch"  # "epoch" in runs of earlier versions
        if "train/loss" not in scalars or epoch_tag not in scalars:
            continue
        # Lightning logs the epoch beside every scalar; its steps place the per-epoch values.
        epoch_at_step = {e.step: int(e.value) + 1 for e in events.Scalars(epoch_tag)}
        for label, stage in SERIES.items():
            if f"{stage}/{metric}" in scalars:  # a resumed run repeats an epoch: the last value wins
                points[label].update({epoch_at_step[e.step]: e.value for e in events.Scalars(f"{stage}/{metric}")
                                      if e.step in epoch_at_step})
    return {label: (sorted(p), [p[epoch] for epoch in sorted(p)]) for label, p in points.items() if p}


def latest_confusion_counts(runs: list[EventAccumulator]) -> tuple[str, np.ndarray] | None:
    """(stage, counts) of the newest logged confusion matrix, validation preferred over test."""
    for stage in ("val", "test"):
        tag = f"{stage}_{CONFUSION_COUNTS_TAG}"
        for events in reversed(runs):
            if tag in events.Tags()["tensors"]:
                return stage, make_ndarray(events.Tensors(tag)[-1].tensor_proto)
    return None


def latest_mistakes_png(runs: list[EventAccumulator]) -> bytes | None:
    """The newest most-confident-mistakes grid as PNG bytes, validation preferred over test."""
    for stage in ("val", "test"):
        tag = f"{stage}/{MISTAKES_TAG}"
        for events in reversed(runs):
            if tag in events.Tags()["images"]:
                return events.Images(tag)[-1].encoded_image_string
    return None


def save(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def write_report(run_dir: str | Path, output_dir: str | Path | None = None) -> list[Path]:
    """Write the figures the run's events allow into `output_dir` (default: the run folder)."""
    run_dir = Path(run_dir)
    output_dir = Path(output_dir) if output_dir else run_dir
    runs = read_events(run_dir)
    loss, accuracy = epoch_curves(runs, "loss"), epoch_curves(runs, "acc")
    confusion = latest_confusion_counts(runs)
    if not (loss or accuracy or confusion):
        raise UserError(f"{run_dir}: the event files hold no per-epoch loss, accuracy or confusion matrix yet")
    written = []
    if loss or accuracy:
        written.append(save(figures.curves_figure(loss, accuracy, title=run_dir.resolve().name), output_dir / CURVES_FILE))
    if confusion is not None:
        stage, counts = confusion
        figure = figures.confusion_matrix_figure(counts, title=f"{STAGE_NAMES[stage]} confusion matrix")
        written.append(save(figure, output_dir / CONFUSION_FILE))
    mistakes = latest_mistakes_png(runs)
    if mistakes is not None:
        with atomic_path(output_dir / MISTAKES_FILE) as tmp:
            tmp.write_bytes(mistakes)
        written.append(output_dir / MISTAKES_FILE)
    return written


def write_run_embedding(run_dir: Path, data_dir: str | None, max_images: int) -> int | None:
    """The projector embedding of a run that has none yet: its last.ckpt's network on the first
    `max_images` images of the validation split the run recorded. Returns how many it embedded,
    None for a run that trained on every row (no validation images to show).

    Written whole or not at all (`write_embedding_into`).
    """
    path = run_dir / "checkpoints" / LAST
    contents = read_checkpoint(path)
    split = recorded_split(path, contents)
    if not holds_rows_out(split):
        return None
    data = KaggleDigitsDataModule(data_dir or recorded_data_dir(contents), download=False, **split)
    data.setup("validate")
    return write_embedding_into(run_dir, network_from_checkpoint(path, contents), data.val_set.images,
                                data.val_set.labels, max_images, epoch=int(contents.get("epoch", 0)) + 1)
