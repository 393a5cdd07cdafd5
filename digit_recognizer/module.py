"""DigitClassifier: the LightningModule that trains DigitCNN with the reference recipe.

It knows nothing of CSVs: batches arrive as float images in [0, 1] and integer labels (in
training with MixUp or CutMix, per-class probabilities instead). With teacher checkpoints it
learns from their averaged probabilities on each augmented batch as well (knowledge distillation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from digit_recognizer.checkpoints import read_checkpoint, recorded_split
from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.ensemble import AveragedNetworks, load_network
from digit_recognizer.errors import UserError
from digit_recognizer.models import DigitCNN

EVALUATION_STAGES = ("val", "test")
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def reference_optimizer(params: Iterable[nn.Parameter]) -> Optimizer:
    """Keras' RMSprop(lr=1e-3): its rho is 0.9 where PyTorch's default alpha is 0.99."""
    return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-8)


def reference_scheduler(optimizer: Optimizer) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Keras' ReduceLROnPlateau(val_acc, patience=3, factor=.5, min_lr=1e-5) in PyTorch's terms.

    Keras halves the rate once 3 epochs in a row fail to improve; PyTorch waits for one more
    epoch than its `patience`, so the same behaviour is patience=2. Keras' `min_delta` is
    PyTorch's absolute threshold.
    """
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=2, threshold=1e-4, threshold_mode="abs", min_lr=1e-5
    )


class DigitClassifier(LightningModule):
    """Cross-entropy training of DigitCNN with torchmetrics accuracy per stage.

    Args:
        optimizer: Builds the optimizer from the parameters (default: the reference RMSprop).
        scheduler: Builds the learning-rate scheduler from the optimizer, or null for none
            (default: the reference ReduceLROnPlateau on validation accuracy).
        scheduler_monitor: Metric a ReduceLROnPlateau scheduler watches.
        scheduler_interval: Step the scheduler every "epoch" or every "step".
        label_smoothing: Cross-entropy label smoothing for training (0: none, as in the reference).
        conv_dropout: Dropout after each convolution block.
        dense_dropout: Dropout before the output layer.
        channels_last: Keep weights and images in NHWC memory layout (cuDNN's tensor-core layout).
        compile: `torch.compile` the network with this mode ("reduce-overhead" replays it as CUDA
            graphs), or null to run it eagerly. The checkpoint's keys do not change.
        teachers: Checkpoints of trained networks (e.g. an ensemble's seeds) whose averaged
            probabilities on each augmented training batch are a second target: knowledge
            distillation. They must not have trained on this run's validation rows.
        distillation_weight: The teachers' share of the training loss; the labels' share is the rest.
    """

    def __init__(
        self,
        optimizer: OptimizerCallable = reference_optimizer,
        scheduler: LRSchedulerCallable | None = reference_scheduler,
        scheduler_monitor: str = "val/acc",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        label_smoothing: float = 0.0,
        conv_dropout: float = 0.25,
        dense_dropout: float = 0.5,
        channels_last: bool = False,
        compile: CompileMode | None = None,
        teachers: list[str] | None = None,
        distillation_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= distillation_weight <= 1.0:
            raise UserError(f"model.distillation_weight must be between 0 and 1, not {distillation_weight}")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.network = DigitCNN(conv_dropout=conv_dropout, dense_dropout=dense_dropout)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        if compile is not None:
            self.network.compile(mode=compile)  # in place: state_dict keys stay those of DigitCNN
        # No per-step input checks in training: on a GPU each would wait for the step to finish.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_accuracy = MulticlassAccuracy(NUM_CLASSES, average="micro", validate_args=False)
        self.accuracy = nn.ModuleDict({
            f"{stage}_acc": MulticlassAccuracy(NUM_CLASSES, average="micro") for stage in EVALUATION_STAGES
        })
        self.example_input_array = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
        # In a tuple, not a submodule: the teachers stay out of the state_dict, the checkpoint,
        # the optimizer and the weight average.
        self.teacher: tuple[AveragedNetworks, ...] = ()

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images.contiguous(memory_format=self.memory_format))

    def setup(self, stage: str) -> None:
        """Load the teachers for training, in eval mode; a bad checkpoint fails before any batch."""
        if stage != "fit" or not self.hparams.teachers or self.teacher:
            return
        checkpoints = {path: read_checkpoint(path) for path in self.hparams.teachers}
        self._check_teachers_split(checkpoints)
        networks = [load_network(path, like=self.network, checkpoint=read) for path, read in checkpoints.items()]
        self.teacher = (AveragedNetworks(networks).eval().requires_grad_(False),)

    def _check_teachers_split(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        """Teachers that trained on this run's validation rows would inflate its val/acc."""
        datamodule = getattr(self.trainer, "datamodule", None)
        student = getattr(datamodule, "hparams", {})
        if not student.get("val_fraction"):
            return
        for path, contents in checkpoints.items():
            split = recorded_split(path, contents)
            if split != {key: student[key] for key in split}:
                raise UserError(
                    f"{path}: this teacher trained with val_fraction {split['val_fraction']} and split_seed "
                    f"{split['split_seed']}, so it saw rows this run validates on (val_fraction "
                    f"{student['val_fraction']}, split_seed {student['split_seed']}); use teachers of the same split"
                )

    def on_fit_start(self) -> None:
        if self.teacher:
            self.teacher[0].to(self.device)

    def _loss_and_logits(self, batch: list[Tensor], stage: str) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self(images)
        if stage != "train":
            return F.cross_entropy(logits, labels), logits
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        if self.teacher:
            with torch.no_grad():
                taught = self.teacher[0](images.contiguous(memory_format=self.memory_format)).exp()
            weight = self.hparams.distillation_weight
            loss = (1 - weight) * loss + weight * F.cross_entropy(logits, taught)
        return loss, logits

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        """The epoch's loss and accuracy are accumulated here and logged once, at the epoch's end:
        each `self.log` call walks Lightning's results in Python, and on a GPU a step's time is
        mostly the CPU's (README, GPU measurements)."""
        loss, logits = self._loss_and_logits(batch, "train")
        labels = batch[1]
        if labels.is_floating_point():  # mixed images: scored against the label with the larger share
            labels = labels.argmax(dim=1)
        # One value per image, so that batches weigh by size (with nan_strategy "disable",
        # MeanMetric ignores its `weight` argument).
        self.train_loss.update(loss.detach().expand(len(labels)))
        self.train_accuracy.update(logits.detach(), labels)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # the steps Lightning writes
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        # Metric objects: Lightning computes (synced across processes) and resets them.
        self.log("train/loss", self.train_loss, prog_bar=True)
        self.log("train/acc", self.train_accuracy, prog_bar=True)

    def _evaluate(self, batch: list[Tensor], stage: str) -> dict[str, Tensor]:
        """Validation and test log per batch: callbacks read the epoch's val/acc in their own
        epoch-end hooks, which Lightning runs before the module's."""
        loss, logits = self._loss_and_logits(batch, stage)
        labels = batch[1]
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy.update(logits, labels)
        # sync_dist: under DDP the epoch mean covers every process (one all-reduce per epoch).
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 sync_dist=True, batch_size=len(labels))
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "logits": logits.detach()}

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Loss and logits: callbacks (the confusion matrix, the mistakes grid) read the logits."""
        return self._evaluate(batch, "val")

    def test_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        """Class probabilities, so that several models' predictions can be averaged."""
        return self(batch[0]).softmax(dim=1)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self._build_scheduler(optimizer)
        # strict=False: training on every row (val_fraction=0) has no val/acc to watch; the
        # plateau scheduler then keeps its rate instead of stopping the run.
        config = {"scheduler": scheduler, "interval": self.hparams.scheduler_interval, "strict": False}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.hparams.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_train_start(self) -> None:
        """A one-cycle schedule must span the run: a resumed run keeps its saved length."""
        steps = self.trainer.estimated_stepping_batches
        for config in self.trainer.lr_scheduler_configs:
            total = getattr(config.scheduler, "total_steps", None)
            if total is None or total == steps:
                continue
            if self.trainer.ckpt_path is not None:
                raise UserError(
                    f"the resumed run's one-cycle schedule has {total} steps, this run would take {steps} "
                    f"(max_epochs, batch size, split or device count changed?); resume with the run's "
                    f"settings or start a new run"
                )
            if total < steps:
                raise UserError(f"OneCycleLR total_steps is {total}, shorter than this run's {steps} steps; "
                                f"leave it null to fit the run")

    def _build_scheduler(self, optimizer: Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The configured scheduler; a run-length schedule (OneCycleLR) left without
        `total_steps` and `epochs` in the config gets this run's number of optimizer steps,
        so the cycle ends with the run whatever max_epochs, batch size or split the user picks.
        """
        settings = getattr(self.scheduler_factory, "keywords", {})
        length = {}
        if "total_steps" in settings and settings["total_steps"] is None and settings.get("epochs") is None:
            steps = self.trainer.estimated_stepping_batches
            if steps == float("inf"):
                raise UserError("a one-cycle schedule needs a run of known length: set trainer.max_epochs or max_steps")
            length = {"total_steps": int(steps)}
        try:
            return self.scheduler_factory(optimizer, **length)
        except ZeroDivisionError:  # OneCycleLR when pct_start x total_steps leaves a phase of no steps
            total = length.get("total_steps", settings.get("total_steps"))
            raise UserError(f"the one-cycle schedule cannot split {total} steps into its phases with "
                            f"pct_start {settings.get('pct_start')}; train for more steps or change pct_start") from None
