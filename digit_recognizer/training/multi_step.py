"""Multi-step batches (data.steps_per_batch K above 1): K optimizer steps in one Lightning batch.

Opt-in and all here: with one step a batch DigitClassifier is plain automatic optimization and
none of this runs. With K steps the data module hands over a StepGroup (data/step_groups.py) and
MultiStepTraining takes its steps as Lightning's automatic optimization takes one a batch: forward,
zero_grad, backward, optimizer step, then the step-interval schedulers (the epoch-interval ones:
resume/scheduler_step.py), with Ctrl-C held back until the group is done (signals.CtrlCHold) and
Lightning's per-step hooks called without its per-call cost where nothing else happens around a
step (DirectSteps). Lightning's per-batch cost is then paid once per K steps (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor

from digit_recognizer.data.step_groups import StepGroup
from digit_recognizer.errors import UserError
from digit_recognizer.lightning_internals import count_optimizer_step
from digit_recognizer.signals import CtrlCHold
from digit_recognizer.training.averaging import SWAWeightAveraging

StepLoss = Callable[[list[Tensor]], tuple[Tensor, Tensor, Tensor]]  # batch -> (loss, logits, labels)


class MultiStepTraining:
    """The training side of a module whose batches carry `steps_per_batch` optimizer steps."""

    def __init__(self, steps_per_batch: int) -> None:
        self.steps_per_batch = steps_per_batch
        self._ctrl_c = CtrlCHold()
        self._direct: DirectSteps | None = None  # set in on_train_start

    @staticmethod
    def check(trainer: Trainer) -> None:
        """Lightning's WeightAveraging averages once per training batch, which would skip K - 1 steps of K."""
        averaging = [type(c).__name__ for c in trainer.callbacks
                     if isinstance(c, WeightAveraging) and not isinstance(c, SWAWeightAveraging)]
        if averaging:
            raise UserError(f"{averaging[0]} averages the weights once per training batch; "
                            f"train it with data.steps_per_batch 1 (SWAWeightAveraging averages every step)")

    @staticmethod
    def configure_schedulers(trainer: Trainer, interval: str, monitor: str) -> None:
        """Under manual optimization Lightning keeps no interval or monitor of a scheduler
        (core/optimizer.py, _configure_schedulers_manual_opt); the step loop and
        EpochEndSchedulerStep read them, as under automatic optimization."""
        for config in trainer.lr_scheduler_configs:
            config.interval = interval
            config.reduce_on_plateau = isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            config.monitor = monitor if config.reduce_on_plateau else None
            config.strict = False

    def on_train_start(self, trainer: Trainer, module: LightningModule) -> None:
        # The callbacks and the strategy are fixed for the run: look up once which per-step hooks to call.
        self._direct = DirectSteps(trainer, module) if DirectSteps.applies(trainer) else None

    def train(self, module: LightningModule, group: StepGroup | list[Tensor], batch_idx: int,
              step_loss: StepLoss) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Take the group's steps; returns their (losses, logits, labels) for the module's metrics."""
        trainer = module.trainer
        optimizer = module.optimizers()
        step_schedulers = [config for config in trainer.lr_scheduler_configs if config.interval == "step"]
        batches = group.steps() if isinstance(group, StepGroup) else [group]
        losses, logits_seen, labels_seen = [], [], []
        with self._ctrl_c.holding():
            for index, batch in enumerate(batches):
                if 0 <= trainer.max_steps <= module.global_step:
                    break
                loss, logits, labels = step_loss(batch)
                optimizer.zero_grad()
                if self._direct is not None:
                    self._direct.backward(loss)
                    self._direct.step(optimizer)
                else:  # Lightning's path: DDP's gradient sync, 16-bit loss scaling
                    module.manual_backward(loss)
                    optimizer.step()
                step_in_epoch = batch_idx * self.steps_per_batch + index + 1
                for config in step_schedulers:
                    if step_in_epoch % config.frequency == 0:
                        module.lr_scheduler_step(config.scheduler, None)
                losses.append(loss.detach())
                logits_seen.append(logits)
                labels_seen.append(labels)
        return losses, logits_seen, labels_seen


class DirectSteps:
    """The steps of a group with only the per-step hooks that someone defines, called directly.

    Lightning's manual optimization sends `on_before_backward`, `on_after_backward` and
    `on_before_optimizer_step` to every callback through `call._call_callback_hooks` (a profiler
    context and each callback's state key per call): about 0.25 ms a step on the development CPU,
    more than a whole GPU step of this network (docs/performance.md). On one device without loss
    scaling nothing else happens around a step, so this calls the same hooks, in Lightning's
    order, but only those that a callback or the module overrides, and counts the step as
    Lightning's optimizer wrapper does. Elsewhere (DDP, 16-bit loss scaling) `applies` is False and
    the module takes Lightning's own path.
    """

    def __init__(self, trainer: Trainer, module: LightningModule) -> None:
        self.trainer, self.module = trainer, module
        self.before_backward = _overriding(trainer, module, "on_before_backward")
        self.after_backward = _overriding(trainer, module, "on_after_backward")
        self.before_step = _overriding(trainer, module, "on_before_optimizer_step")

    @staticmethod
    def applies(trainer: Trainer) -> bool:
        plugin = trainer.precision_plugin
        unscaled = type(plugin) is Precision or (type(plugin) is MixedPrecision and plugin.scaler is None)
        return type(trainer.strategy) is SingleDeviceStrategy and unscaled

    def backward(self, loss: Tensor) -> None:
        for hook in self.before_backward:
            hook(loss)
        self.module.backward(loss)  # LightningModule.backward: loss.backward(), unless overridden
        for hook in self.after_backward:
            hook()

    def step(self, optimizer: LightningOptimizer) -> None:
        def hooks_and_step() -> None:
            for hook in self.before_step:
                hook(optimizer.optimizer)
            optimizer.optimizer.step()

        count_optimizer_step(optimizer, hooks_and_step)  # the manual loop's step count: trainer.global_step


def _overriding(trainer: Trainer, module: LightningModule, name: str) -> list[Callable[..., None]]:
    """Hook `name` of each callback, then of the module, that defines its own, bound to trainer and module."""
    hooks = [partial(getattr(callback, name), trainer, module) for callback in trainer.callbacks
             if getattr(type(callback), name) is not getattr(Callback, name)]
    if getattr(type(module), name) is not getattr(LightningModule, name):
        hooks.append(getattr(module, name))
    return hooks
