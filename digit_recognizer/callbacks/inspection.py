"""Callbacks that put what a user needs to understand a run into its TensorBoard event files."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchvision.utils import make_grid

from digit_recognizer import figures
from digit_recognizer.constants import CONFUSION_COUNTS_TAG, IMAGE_SIZE, MISTAKES_TAG, NUM_CLASSES, STAGE_NAMES

BEST_METRIC = "hp_metric"  # TensorBoardLogger's name for the HParams tab's metric


def tensorboard_logger(trainer: Trainer) -> TensorBoardLogger | None:
    """The run's TensorBoardLogger, if it has one."""
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def run_hparams(trainer: Trainer, logger: TensorBoardLogger) -> dict[str, Any]:
    """What the HParams tab compares: the module's and data module's arguments (as Lightning
    recorded them), the optimizer and its settings, the scheduler and the epoch budget."""
    params = {key: value for key, value in logger.hparams.items() if not key.startswith("_")}
    optimizer = trainer.optimizers[0]
    params["optimizer"] = {"name": type(optimizer).__name__,
                           **{k: v for k, v in optimizer.defaults.items() if isinstance(v, (int, float, str))}}
    schedulers = trainer.lr_scheduler_configs
    params["scheduler"] = type(schedulers[0].scheduler).__name__ if schedulers else "none"
    params["max_epochs"] = trainer.max_epochs
    return params


class EpochTimer(Callback):
    """Log each training epoch's duration (validation included) and training throughput
    (training images per second of training time, all processes together)."""

    def __init__(self) -> None:
        self.started = self.validation_started = self.validation_seconds = 0.0
        self.images = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed mid-epoch skips that epoch's on_train_epoch_start: time the rest from here.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started, self.validation_seconds, self.images = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.images += len(batch[0])

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validation_started = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validation_seconds += time.perf_counter() - self.validation_started

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        seconds = time.perf_counter() - self.started
        training_seconds = max(seconds - self.validation_seconds, 1e-9)
        pl_module.log("time/epoch_seconds", seconds, reduce_fx="max", sync_dist=True)
        pl_module.log("time/images_per_second", self.images / training_seconds, reduce_fx="sum", sync_dist=True)


class ClassificationInspector(Callback):
    """After each validation (and test) epoch: where the model goes wrong, synced across processes.

    Writes the confusion matrix as images (counts and row-normalised) and as a tensor of counts,
    per-class precision, recall and F1 as scalars, a grid of the most confidently wrong images
    labelled with truth and prediction, and (during fit) the best validation accuracy so far as
    the HParams tab's metric with the module's and data module's hyperparameters. Under DDP the torchmetrics states are summed over processes, and the
    data module's evaluation loaders give every image to exactly one process.

    Args:
        num_mistakes: How many of the most confidently wrong images to show.
        mistakes_per_row: Images per row of that grid.
    """

    def __init__(self, num_mistakes: int = 32, mistakes_per_row: int = 8) -> None:
        self.num_mistakes = num_mistakes
        self.mistakes_per_row = mistakes_per_row
        self.confusion = MulticlassConfusionMatrix(NUM_CLASSES)
        self.per_class = MetricCollection({
            "precision": MulticlassPrecision(NUM_CLASSES, average=None),
            "recall": MulticlassRecall(NUM_CLASSES, average=None),
            "f1": MulticlassF1Score(NUM_CLASSES, average=None),
        })
        self.mistakes: dict[str, Tensor] = {}
        self.best_accuracy: float | None = None

    # -- collecting ---------------------------------------------------------------------------

    def _start(self, pl_module: LightningModule) -> None:
        self.confusion.to(pl_module.device).reset()
        self.per_class.to(pl_module.device).reset()
        device = pl_module.device
        self.mistakes = {
            "confidence": torch.empty(0, device=device),
            "images": torch.empty(0, 1, IMAGE_SIZE, IMAGE_SIZE, device=device),
            "labels": torch.empty(0, dtype=torch.long, device=device),
            "predicted": torch.empty(0, dtype=torch.long, device=device),
        }

    def _collect(self, outputs: Any, batch: list[Tensor]) -> None:
        images, labels = batch
        logits = outputs["logits"]
        self.confusion.update(logits, labels)
        self.per_class.update(logits, labels)
        confidence, predicted = logits.softmax(dim=1).max(dim=1)
        wrong = predicted != labels
        new = {"confidence": confidence[wrong], "images": images[wrong], "labels": labels[wrong], "predicted": predicted[wrong]}
        merged = {key: torch.cat([self.mistakes[key], value]) for key, value in new.items()}
        keep = merged["confidence"].argsort(descending=True)[: self.num_mistakes]
        self.mistakes = {key: value[keep] for key, value in merged.items()}

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(outputs, batch)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(outputs, batch)

    # -- reporting ----------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._report(trainer, pl_module, "val")
        accuracy = trainer.callback_metrics.get("val/acc")
        if accuracy is None or trainer.state.fn != TrainerFn.FITTING:
            return  # the HParams metric describes training runs; `validate` must not overwrite it
        first = self.best_accuracy is None
        self.best_accuracy = max(float(accuracy), self.best_accuracy or 0.0)
        logger = tensorboard_logger(trainer)
        if first and logger is not None:
            # The HParams session, written once a real value exists (configs set default_hp_metric:
            # false, so Lightning writes no -1 placeholder, which `test` would also write again).
            logger.log_hyperparams(run_hparams(trainer, logger), {BEST_METRIC: self.best_accuracy}, trainer.global_step)
        pl_module.log(BEST_METRIC, self.best_accuracy, sync_dist=True)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    def _report(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        counts = self.confusion.compute().cpu()  # every process takes part in these syncs
        per_class = {name: values.cpu() for name, values in self.per_class.compute().items()}
        self._write(trainer, stage, counts, per_class, self._gather_mistakes(pl_module))

    def _gather_mistakes(self, pl_module: LightningModule) -> dict[str, Tensor]:
        """Every process's top mistakes, padded to the same length so that all_gather can stack them."""
        local = self.mistakes
        if pl_module.trainer.world_size == 1:
            return {key: value.cpu() for key, value in local.items()}
        pad = self.num_mistakes - len(local["confidence"])
        padded = {key: torch.cat([value, value.new_zeros(pad, *value.shape[1:])]) for key, value in local.items()}
        padded["confidence"][len(local["confidence"]):] = -1.0  # marks the padding
        gathered = {key: pl_module.all_gather(value).flatten(0, 1).cpu() for key, value in padded.items()}
        keep = gathered["confidence"].argsort(descending=True)[: self.num_mistakes]
        keep = keep[gathered["confidence"][keep] >= 0]
        return {key: value[keep] for key, value in gathered.items()}

    @rank_zero_only
    def _write(self, trainer: Trainer, stage: str, counts: Tensor, per_class: dict[str, Tensor],
               mistakes: dict[str, Tensor]) -> None:
        """Straight into the event file (already synced values; kept out of Lightning's results table)."""
        logger = tensorboard_logger(trainer)
        if logger is None:
            rank_zero_warn("ClassificationInspector writes into a TensorBoardLogger's run; this run has none")
            return
        writer: SummaryWriter = logger.experiment
        step = trainer.global_step
        for name, values in per_class.items():
            for digit, value in enumerate(values.tolist()):
                writer.add_scalar(f"{stage}_{name}/{digit}", value, step)
        writer.add_tensor(f"{stage}_{CONFUSION_COUNTS_TAG}", counts.int(), step)
        for normalize, name in ((False, "counts"), (True, "normalized")):
            figure = figures.confusion_matrix_figure(counts.numpy(), normalize, title=f"{STAGE_NAMES[stage]} confusion matrix")
            writer.add_figure(f"{stage}_confusion_matrix/{name}", figure, step)
        if len(mistakes["confidence"]):
            writer.add_figure(f"{stage}/{MISTAKES_TAG}", self._mistakes_figure(mistakes), step)

    def _mistakes_figure(self, mistakes: dict[str, Tensor]) -> Figure:
        padding = 8  # room for a caption above each image
        grid = make_grid(mistakes["images"].float(), nrow=self.mistakes_per_row, padding=padding, pad_value=1.0)
        captions = [f"{t}→{p} ({c:.2f})" for t, p, c in zip(mistakes["labels"].tolist(), mistakes["predicted"].tolist(),
                                                          mistakes["confidence"].tolist())]
        cell = mistakes["images"].shape[-1]
        return figures.mistakes_figure(grid[0].numpy(), captions, min(self.mistakes_per_row, len(captions)), cell, padding)

    def state_dict(self) -> dict[str, Any]:
        return {"best_accuracy": self.best_accuracy}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_accuracy = state_dict.get("best_accuracy")
