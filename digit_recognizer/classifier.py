"""DigitClassifier: the LightningModule that trains an injected network on digit batches.

It holds the loss, the per-stage metrics (with `val/acc_best` as a MaxMetric) and the optimizer and
scheduler wiring; the network is a plain nn.Module chosen by `class_path` (the reference DigitCNN by
default). It knows nothing of CSVs: batches arrive as float images in [0, 1] and integer labels (in
training with MixUp or CutMix, per-class probabilities instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from digit_recognizer.checkpoints import CHECKPOINT_FORMAT
from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.models import DigitCNN
from digit_recognizer.names import BEST_ACCURACY, FORMAT_KEY
from digit_recognizer.training.distillation import Distillation
from digit_recognizer.training.multi_step import MultiStepTraining
from digit_recognizer.training.schedules import build_scheduler, check_schedule_length

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
    """Cross-entropy training of `network` with torchmetrics accuracy per stage.

    Args:
        network: The network, (B, 1, 28, 28) images to (B, 10) logits; default: the reference DigitCNN.
        optimizer: Builds the optimizer from the parameters (default: the reference RMSprop).
        scheduler: Builds the learning-rate scheduler from the optimizer, or null for none
            (default: the reference ReduceLROnPlateau on validation accuracy). A OneCycleLR left
            without `total_steps` spans the run.
        scheduler_monitor: Metric a ReduceLROnPlateau scheduler watches.
        scheduler_interval: Step the scheduler every "epoch" or every "step".
        label_smoothing: Cross-entropy label smoothing for training (0: none, as in the reference).
        channels_last: Keep weights and images in NHWC memory layout (cuDNN's tensor-core layout).
        compile: `torch.compile` the network with this mode ("reduce-overhead" replays it as CUDA
            graphs), or null to run it eagerly. The checkpoint's keys do not change.
        distillation: Teacher checkpoints whose averaged probabilities are a second training target.
        steps_per_batch: Optimizer steps per training batch; the CLI sets it from
            `data.steps_per_batch`. Above 1 the batches arrive as StepGroups and the steps are taken
            by hand (Lightning's manual optimization), exactly as Lightning takes one a batch.
    """

    def __init__(
        self,
        network: nn.Module | None = None,
        optimizer: OptimizerCallable = reference_optimizer,
        scheduler: LRSchedulerCallable | None = reference_scheduler,
        scheduler_monitor: str = "val/acc",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: CompileMode | None = None,
        distillation: Distillation | None = None,
        steps_per_batch: int = 1,
    ) -> None:
        super().__init__()
        # Under the CLI the hyperparameters are the parsed config: the network's class_path and
        # arguments, the teachers as a mapping. Built in Python, record the same plain values, so
        # that checkpoints load with torch.load(weights_only=True).
        # steps_per_batch is the data module's setting (the CLI links it): recorded there, not here.
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "steps_per_batch"])
        if isinstance(self.hparams.get("network"), nn.Module):
            self.hparams["network"] = {"class_path": f"{type(network).__module__}.{type(network).__qualname__}"}
        if isinstance(distillation, Distillation):
            self.hparams["distillation"] = asdict(distillation)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.network = network if network is not None else DigitCNN()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        if compile is not None:
            self.network.compile(mode=compile)  # in place: state_dict keys stay the network's
        self.distillation = distillation
        self.steps_per_batch = steps_per_batch
        # Opt-in: K optimizer steps a training batch, taken by hand (training/multi_step.py).
        self.multi_step = MultiStepTraining(steps_per_batch) if steps_per_batch > 1 else None
        self.automatic_optimization = self.multi_step is None
        # No per-step input checks in training: on a GPU each would wait for the step to finish.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_accuracy = MulticlassAccuracy(NUM_CLASSES, average="micro", validate_args=False)
        self.accuracy = nn.ModuleDict({
            f"{stage}_acc": MulticlassAccuracy(NUM_CLASSES, average="micro") for stage in EVALUATION_STAGES
        })
        self.best_val_accuracy = MaxMetric()  # not in the state_dict: its value travels in on_save_checkpoint
        self.example_input_array = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images.contiguous(memory_format=self.memory_format))

    # -- training ----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.multi_step is not None:
            self.multi_step.check(self.trainer)
        if stage == "fit" and self.distillation is not None:
            self.distillation.load_teachers(self.network, getattr(self.trainer, "datamodule", None))

    def on_fit_start(self) -> None:
        if self.distillation is not None:
            self.distillation.to(self.device)
        if self.multi_step is not None:
            self.multi_step.configure_schedulers(self.trainer, self.hparams.scheduler_interval,
                                                 self.hparams.scheduler_monitor)

    def on_train_start(self) -> None:
        check_schedule_length(self.trainer, self.steps_per_batch)
        if self.multi_step is not None:
            self.multi_step.on_train_start(self.trainer, self)

    def training_loss(self, logits: Tensor, images: Tensor, labels: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        if self.distillation is not None:
            loss = self.distillation.blend(loss, logits, images.contiguous(memory_format=self.memory_format))
        return loss

    def _step_loss(self, batch: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The loss of one optimizer step's batch, with its logits and (class-index) labels for the metrics."""
        images, labels = batch[:2]  # then the rows in the CSV, which training does not need
        logits = self(images)
        loss = self.training_loss(logits, images, labels)
        if labels.is_floating_point():  # mixed images: scored against the label with the larger share
            labels = labels.argmax(dim=1)
        return loss, logits.detach(), labels

    def _update_train_metrics(self, losses: list[Tensor], logits: list[Tensor], labels: list[Tensor]) -> None:
        # One loss value per image, so that batches weigh by size (with nan_strategy "disable",
        # MeanMetric ignores its `weight` argument).
        self.train_loss.update(torch.cat([loss.detach().expand(len(y)) for loss, y in zip(losses, labels)]))
        self.train_accuracy.update(torch.cat(logits), torch.cat(labels))

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor | None:
        """The epoch's loss and accuracy are accumulated here and logged once, at the epoch's end:
        each `self.log` call walks Lightning's results in Python, and on a GPU a step's time is
        mostly the CPU's (docs/performance.md)."""
        if self.multi_step is not None:  # K steps in this batch, taken by hand
            losses, logits, labels = self.multi_step.train(self, batch, batch_idx, self._step_loss)
            if losses:
                self._update_train_metrics(losses, logits, labels)
                self.log("train/loss_step", losses[-1], on_step=True, on_epoch=False, batch_size=len(labels[-1]))
            return None
        loss, logits, labels = self._step_loss(batch)
        self._update_train_metrics([loss], [logits], [labels])
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # the steps Lightning writes
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        # Metric objects: Lightning computes (synced across processes) and resets them.
        self.log("train/loss", self.train_loss, prog_bar=True)
        self.log("train/acc", self.train_accuracy, prog_bar=True)

    # -- evaluation --------------------------------------------------------------------------------

    def _evaluate(self, batch: list[Tensor], stage: str) -> dict[str, Tensor]:
        """Validation and test log per batch: callbacks read the epoch's val/acc in their own
        epoch-end hooks, which Lightning runs before the module's."""
        images, labels = batch[:2]
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
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

    def on_validation_epoch_end(self) -> None:
        """`val/acc_best`: the best validation accuracy of the run so far (fit only, not the sanity check)."""
        if self.trainer.sanity_checking or self.trainer.state.fn != TrainerFn.FITTING:
            return
        self.best_val_accuracy.update(self.accuracy["val_acc"].compute())
        self.log(BEST_ACCURACY, self.best_val_accuracy.compute(), prog_bar=True)

    def test_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        """Class probabilities, so that several models' predictions can be averaged."""
        return self(batch[0]).softmax(dim=1)

    # -- optimizer, scheduler and checkpoints -------------------------------------------------------

    def configure_optimizers(self) -> Optimizer | dict[str, Any]:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = build_scheduler(self.scheduler_factory, optimizer, self._trainer, self.steps_per_batch)
        # strict=False: training on every row (val_fraction=0) has no val/acc to watch; the
        # plateau scheduler then keeps its rate instead of stopping the run.
        config = {"scheduler": scheduler, "interval": self.hparams.scheduler_interval, "strict": False}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.hparams.scheduler_monitor
        if self.multi_step is not None:  # Lightning would warn and drop all but the scheduler: see on_fit_start
            config = {"scheduler": scheduler}
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[FORMAT_KEY] = CHECKPOINT_FORMAT
        if self.best_val_accuracy.update_count:
            checkpoint[BEST_ACCURACY] = self.best_val_accuracy.compute().item()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_val_accuracy.reset()
        if BEST_ACCURACY in checkpoint:
            self.best_val_accuracy.update(torch.tensor(checkpoint[BEST_ACCURACY]))
