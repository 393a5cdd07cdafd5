"""What a run's TensorBoard opens on: the Custom Scalars landing layout, the HParams row, and a
note for a run without validation. Every run gets them (`ClassificationInspector` writes them at
the start of `fit`), so they live in code, not in the recipes.

The layout is TensorBoard's own Custom Scalars plugin (`SummaryWriter.add_custom_scalars`) and
the HParams row its hparams plugin (`summary_v2.hparams_pb` / `hparams_config_pb`, which keep
booleans boolean where Lightning's `log_hyperparams` writes 1.0/0.0). What is written by hand here
is only the choice of what to show.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from tensorboard.plugins.hparams import summary_v2 as hp
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.callbacks.inference import InferenceAveraging
from digit_recognizer.lightning_internals import batches_that_stepped, summary_file_writer
from digit_recognizer.names import BEST_ACCURACY, NETWORK

HPARAMS_METRICS = {  # tag: column title; the hparams plugin reads each run's last value of the tag
    BEST_ACCURACY: "best val accuracy",
    "val/loss": "val loss",
    "train/acc": "train accuracy",
    "train/loss": "train loss",
}
NO_VALIDATION_TAG = "about/no_validation"  # the TEXT tab's card of a run that trains on every row

_PER_DIGIT = ("precision", "recall", "f1")
# Custom Scalars: {category: {chart title: ["Multiline", [tag regexes, matched from the start]]}}.
# One layout for every run (TensorBoard merges equal charts of several runs into one): a run
# without validation shows its training lines in the same charts.
LANDING_LAYOUT: dict[str, dict[str, list]] = {
    "Training (open this tab first)": {
        "loss: train and val (overfitting: val rises while train falls)": ["Multiline", [r"train/loss$", r"val/loss$"]],
        "accuracy: train, val and best val": ["Multiline", [r"train/acc$", r"val/acc$", r"val/acc_best$"]],
        "learning rate": ["Multiline", [r"lr-"]],
        "training images per second": ["Multiline", [r"time/images_per_second$"]],
        "epoch time in seconds (training + validation)": ["Multiline", [r"time/epoch_seconds$"]],
    },
    "Validation per digit (one line per digit 0-9)": {
        f"{name} per digit": ["Multiline", [rf"val_{name}/\d$"]] for name in _PER_DIGIT
    },
}

NO_VALIDATION_TEXT = (
    "**This run has no validation split** (`data.val_fraction 0`, `data.folds 0`: every row of "
    "train.csv trains, as in `best.yaml` and `deotte.yaml`). So there are no `val/` curves, "
    "confusion matrices, mistakes, PR curves, projector embedding, nor an HParams `val/acc_best`; "
    "the CUSTOM SCALARS tab shows the training curves. To measure the recipe, train it again with "
    "`--data.val_fraction 0.1`."
)


def write_landing_layout(writer: SummaryWriter) -> None:
    """The Custom Scalars tab's charts (TensorBoard's plugin; the layout is stored in the event file)."""
    writer.add_custom_scalars(LANDING_LAYOUT)


def write_no_validation_note(writer: SummaryWriter, step: int) -> None:
    writer.add_text(NO_VALIDATION_TAG, NO_VALIDATION_TEXT, step)


def has_validation(trainer: Trainer) -> bool:
    """Whether `fit` will validate: the data module holds out rows and the trainer runs validation."""
    data = getattr(trainer, "datamodule", None)
    settings = getattr(data, "hparams", {}) or {}
    held_out = settings.get("val_fraction", 0.1) > 0 or settings.get("folds", 0) > 0
    return held_out and trainer.limit_val_batches != 0


def write_hparams(writer: SummaryWriter, params: Mapping[str, bool | int | float | str]) -> None:
    """The HParams tab's row: the session's values and the experiment's columns and metrics.

    Every run writes the same keys (`recipe_hparams`), so that the experiment definition the
    plugin takes from whichever run it reads first fits every run: ensemble members of different
    recipes, seeds and folds compare side by side in one table.
    """
    config = hp.hparams_config_pb(hparams=[hp.HParam(name) for name in params],
                                  metrics=[hp.Metric(tag, display_name=title) for tag, title in HPARAMS_METRICS.items()])
    file_writer = summary_file_writer(writer)
    for summary in (config, hp.hparams_pb(dict(params))):
        file_writer.add_summary(summary)
    file_writer.flush()


def recipe_hparams(trainer: Trainer, pl_module: LightningModule) -> dict[str, bool | int | float | str]:
    """The recipe's choices, named after the options that set them (so the columns sort by section):
    network, optimizer, learning-rate schedule, batch size, epochs, augmentation, weight averaging,
    label smoothing, distillation, inference shifts, seed and the validation split. Never None;
    nothing about where files are or how fast the loaders run."""
    module = dict(pl_module.hparams)
    network = getattr(pl_module, NETWORK, pl_module)
    params: dict[str, bool | int | float | str] = {
        "model.network": type(network).__name__,
        "model.network.args": _settings(_get(module.get("network"), "init_args") or {}),
        "model.label_smoothing": float(module.get("label_smoothing", 0.0)),
        "model.distillation": _distillation(module.get("distillation")),
        "trainer.max_epochs": int(trainer.max_epochs if trainer.max_epochs is not None else -1),
        "trainer.weight_averaging": _weight_averaging(trainer),
        "inference.shifts": sum(len(c.shifts) for c in trainer.callbacks if isinstance(c, InferenceAveraging)),
    }
    if trainer.optimizers:
        optimizer = trainer.optimizers[0]
        params["model.optimizer"] = type(optimizer).__name__
        params["model.optimizer.lr"] = float(optimizer.defaults.get("lr", 0.0))
        params["model.optimizer.args"] = _settings(_changed_defaults(optimizer))
    configs = trainer.lr_scheduler_configs
    scheduler = configs[0].scheduler if configs else None
    params["model.scheduler"] = type(scheduler).__name__ if scheduler is not None else "none"
    factory = getattr(pl_module, "scheduler_factory", None)
    args = dict(factory.keywords) if isinstance(factory, partial) else {}
    if scheduler is not None:
        signature = inspect.signature(type(scheduler)).parameters
        args = {key: value for key, value in args.items() if key not in signature or value != signature[key].default}
        args["interval"] = configs[0].interval
    params["model.scheduler.args"] = _settings(args)
    data = getattr(getattr(trainer, "datamodule", None), "hparams", None)
    if data:
        params |= {f"data.{key}": data[key] for key in ("batch_size", "val_fraction", "split_seed", "folds", "fold", "augment")
                   if key in data}
        params["data.augmentation"] = _augmentation(data)
    seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything (LightningCLI's seed_everything)
    if seed is not None:
        params["seed_everything"] = int(seed)
    return {key: _plain(value) for key, value in params.items()}


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) or hasattr(value, "get") else None


def _plain(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _settings(settings: Mapping[str, Any]) -> str:
    """"a=1, b=2", or "defaults" when nothing is set (a column never holds None)."""
    return ", ".join(f"{key}={value}" for key, value in settings.items()) or "defaults"


def _changed_defaults(optimizer: Any) -> dict[str, Any]:
    """The optimizer's settings that differ from its class's defaults, learning rate aside."""
    signature = inspect.signature(type(optimizer)).parameters
    return {key: value for key, value in optimizer.defaults.items()
            if key != "lr" and key in signature and isinstance(value, (bool, int, float, str))
            and value != signature[key].default}


def _augmentation(data: Mapping[str, Any]) -> str:
    if not data.get("augment", False):
        return "none"
    parts = [f"{name}={data[key]}" for name, key in (("rotation", "rotation_degrees"), ("zoom", "zoom"), ("shift", "shift"),
                                                      ("elastic", "elastic_alpha"), ("mixup", "mixup_alpha"),
                                                      ("cutmix", "cutmix_alpha")) if data.get(key)]
    return ", ".join(parts) or "none"


def _weight_averaging(trainer: Trainer) -> str:
    found = [f"{type(c).__name__}(start_epoch={c.start_epoch})" if hasattr(c, "start_epoch") else type(c).__name__
             for c in trainer.callbacks if isinstance(c, WeightAveraging)]
    return ", ".join(found) or "none"


def _distillation(settings: Any) -> str:
    teachers = _get(settings, "teachers") or []
    return f"{len(teachers)} teachers, weight={_get(settings, 'weight')}" if teachers else "none"


def logged_step(trainer: Trainer) -> int:
    """The step Lightning writes the epoch's logged metrics at (one below `global_step` at an
    epoch's end). Lightning has no public name for it; the inspector's per-class scores, images and
    PR curves use it so that TensorBoard pairs them with the same epoch's `val/acc`."""
    return batches_that_stepped(trainer)
