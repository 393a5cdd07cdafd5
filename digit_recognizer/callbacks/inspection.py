"""Callbacks that put what a user needs to understand a run into its TensorBoard event files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchmetrics import MetricCollection
from torchmetrics.utilities.distributed import gather_all_tensors
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from digit_recognizer import figures
from digit_recognizer.callbacks import dashboard
from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.names import CONFUSION_COUNTS_TAG, MISTAKES_TAG, NETWORK
from digit_recognizer.projector import write_embedding_into
from digit_recognizer.runs import tensorboard_logger

MISTAKES_BY_DIGIT_TAG = "mistakes_by_digit"  # "val_mistakes_by_digit/3": one card a true digit
PR_CURVE_TAG = "pr_curve"  # "val_pr_curve/3": digit 3 against the rest



class ClassificationInspector(Callback):
    """After each validation (and test) epoch: where the model goes wrong, synced across processes.

    Writes the confusion matrix as images (counts and row-normalised) and as a tensor of counts,
    per-class precision, recall and F1 as scalars, a grid of the most confidently wrong images
    labelled with truth and prediction, all at the step Lightning writes the epoch's metrics at.
    At the start of `fit` it writes what the run's TensorBoard opens on (`dashboard`): the Custom
    Scalars landing layout, the HParams row of the recipe's choices (its metric is the module's
    own `val/acc_best`) and, for a run without validation, a text card that says so. Under DDP the
    torchmetrics states are summed over processes, and the data module's evaluation loaders give
    every image to exactly one process; only rank zero writes, and it calls no collective alone.

    With `pr_curves`, each digit's precision-recall curve (that digit against the rest, from the
    epoch's class probabilities, gathered from every process) goes to the PR Curves tab. With
    `embedding_images`, the end of fit puts that many images of the last validation epoch (rank
    zero's share) into the Projector tab as `val_embedding/epoch_N`: the final network's
    penultimate-layer activations, labelled with truth and prediction (`write_embedding`).

    Args:
        num_mistakes: How many of the most confidently wrong images to show.
        mistakes_per_row: Images per row of that grid.
        pr_curves: Write the per-digit precision-recall curves.
        embedding_images: At most this many validation images in the projector; 0: none.
    """

    def __init__(self, num_mistakes: int = 32, mistakes_per_row: int = 3, pr_curves: bool = True,
                 embedding_images: int = 1000) -> None:
        self.num_mistakes = num_mistakes
        self.mistakes_per_row = mistakes_per_row
        self.pr_curves = pr_curves
        self.embedding_images = embedding_images
        self.confusion = MulticlassConfusionMatrix(NUM_CLASSES)
        self.per_class = MetricCollection({
            "precision": MulticlassPrecision(NUM_CLASSES, average=None),
            "recall": MulticlassRecall(NUM_CLASSES, average=None),
            "f1": MulticlassF1Score(NUM_CLASSES, average=None),
        })
        self.mistakes: dict[str, Tensor] = {}
        self.scores: dict[str, list[Tensor]] = {"probabilities": [], "labels": []}
        self.embedded: dict[str, list[Tensor]] = {"images": [], "labels": []}

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
            "rows": torch.empty(0, dtype=torch.long, device=device),
        }
        self.scores = {"probabilities": [], "labels": []}

    def _collect(self, outputs: Any, batch: list[Tensor]) -> None:
        images, labels = batch[:2]
        rows = batch[2] if len(batch) > 2 else torch.full_like(labels, -1)
        logits = outputs["logits"]
        self.confusion.update(logits, labels)
        self.per_class.update(logits, labels)
        probabilities = logits.float().softmax(dim=1)
        if self.pr_curves:  # kept on the device: 40 bytes an image
            self.scores["probabilities"].append(probabilities)
            self.scores["labels"].append(labels)
        confidence, predicted = probabilities.max(dim=1)
        wrong = predicted != labels
        new = {"confidence": confidence[wrong], "images": images[wrong], "labels": labels[wrong], "predicted": predicted[wrong],
               "rows": rows[wrong]}
        merged = {key: torch.cat([self.mistakes[key], value]) for key, value in new.items()}
        keep = merged["confidence"].argsort(descending=True)[: self.num_mistakes]
        self.mistakes = {key: value[keep] for key, value in merged.items()}

    def _collect_embedding(self, batch: list[Tensor]) -> None:
        """The first `embedding_images` of the epoch, for on_fit_end (the network runs on them then)."""
        held = sum(len(labels) for labels in self.embedded["labels"])
        room = self.embedding_images - held
        if room > 0:
            images, labels = batch[:2]
            self.embedded["images"].append(images[:room].detach())
            self.embedded["labels"].append(labels[:room])

    @rank_zero_only
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The landing layout, the HParams row and the no-validation note: written by rank zero
        alone, with no collective (the logger's folder is rank zero's own)."""
        logger = tensorboard_logger(trainer)
        if logger is None:
            return  # _write warns at the first validation
        writer: SummaryWriter = logger.experiment
        dashboard.write_landing_layout(writer)
        dashboard.write_hparams(writer, dashboard.recipe_hparams(trainer, pl_module))
        if not dashboard.has_validation(trainer):
            dashboard.write_no_validation_note(writer, dashboard.logged_step(trainer))

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.embedded = {"images": [], "labels": []}  # the newest epoch's: fit may stop after any

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(outputs, batch)
        if self.embedding_images > 0 and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._collect_embedding(batch)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(outputs, batch)

    # -- reporting ----------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._report(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.embedding_images > 0 and self.embedded["labels"]:
            self._write_embedding(trainer, pl_module)
        self.embedded = {"images": [], "labels": []}

    @rank_zero_only
    def _write_embedding(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = tensorboard_logger(trainer)
        if logger is None:
            return  # _write has warned already
        network = getattr(pl_module, NETWORK, pl_module)
        images, labels = (torch.cat(self.embedded[key]) for key in ("images", "labels"))
        try:
            write_embedding_into(Path(logger.log_dir), network, images, labels, self.embedding_images,
                                 epoch=trainer.current_epoch)
        except ValueError as exc:  # a network without an nn.Linear has no penultimate layer to show
            rank_zero_warn(f"ClassificationInspector wrote no projector embedding: {exc}")

    def _report(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        counts = self.confusion.compute().cpu()  # every process takes part in these syncs
        per_class = {name: values.cpu() for name, values in self.per_class.compute().items()}
        scores = None
        if self.pr_curves:
            device = pl_module.device
            probabilities = torch.cat([torch.empty(0, NUM_CLASSES, device=device), *self.scores["probabilities"]])
            labels = torch.cat([torch.empty(0, dtype=torch.long, device=device), *self.scores["labels"]])
            scores = {"probabilities": _gather_rows(pl_module, probabilities), "labels": _gather_rows(pl_module, labels)}
        self._write(trainer, stage, counts, per_class, self._gather_mistakes(pl_module), scores)

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
               mistakes: dict[str, Tensor], scores: dict[str, Tensor] | None = None) -> None:
        """Straight into the event file (already synced values; kept out of Lightning's results table)."""
        logger = tensorboard_logger(trainer)
        if logger is None:
            rank_zero_warn("ClassificationInspector writes into a TensorBoardLogger's run; this run has none")
            return
        writer: SummaryWriter = logger.experiment
        step = dashboard.logged_step(trainer)  # the epoch's val/acc is at this step too
        for name, values in per_class.items():
            for digit, value in enumerate(values.tolist()):
                writer.add_scalar(f"{stage}_{name}/{digit}", value, step)
        writer.add_tensor(f"{stage}_{CONFUSION_COUNTS_TAG}", counts.int(), step)
        for normalize, name in ((False, "counts"), (True, "normalized")):
            figure = figures.confusion_card_figure(counts.numpy(), normalize)
            writer.add_figure(f"{stage}_confusion_matrix/{name}", figure, step)
        if len(mistakes["confidence"]):
            writer.add_figure(f"{stage}/{MISTAKES_TAG}", self._mistakes_figure(mistakes), step)
            self._write_mistakes_by_digit(writer, stage, mistakes, step)
        if scores is not None and len(scores["labels"]):
            for digit in range(NUM_CLASSES):
                writer.add_pr_curve(f"{stage}_{PR_CURVE_TAG}/{digit}", scores["labels"] == digit,
                                    scores["probabilities"][:, digit], step)

    @staticmethod
    def _write_mistakes_by_digit(writer: SummaryWriter, stage: str, mistakes: dict[str, Tensor], step: int) -> None:
        """One card a true digit, its (up to) three most confident mistakes in one row: the size a
        Time Series card shows an image at without "Show actual image size" (the whole grid above
        is taller than a card and shrinks to fit it)."""
        for digit in mistakes["labels"].unique().tolist():
            keep = (mistakes["labels"] == digit).nonzero().flatten()[:3]  # already most confident first
            chosen = {key: value[keep] for key, value in mistakes.items()}
            figure = figures.wrong_images_figure(chosen["images"], chosen["labels"], chosen["predicted"], chosen["confidence"],
                                                 chosen["rows"], title=f"true {digit}: most confidently wrong")
            writer.add_figure(f"{stage}_{MISTAKES_BY_DIGIT_TAG}/{digit}", figure, step)

    def _mistakes_figure(self, mistakes: dict[str, Tensor]) -> Figure:
        # The CSV's line under each image, so a suspicious label can be looked up.
        return figures.wrong_images_figure(mistakes["images"], mistakes["labels"], mistakes["predicted"],
                                           mistakes["confidence"], mistakes["rows"], self.mistakes_per_row)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: checkpoints of earlier versions hold a `best_accuracy` (the old copy
        of `val/acc_best`), which is ignored."""


def _gather_rows(pl_module: LightningModule, rows: Tensor) -> Tensor:
    """Every process's rows (of any count), concatenated on the CPU: torchmetrics' gather pads and trims."""
    if pl_module.trainer.world_size == 1:
        return rows.cpu()
    return torch.cat(gather_all_tensors(rows)).cpu()


