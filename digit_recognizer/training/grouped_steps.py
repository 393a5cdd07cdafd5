"""The steps of a multi-step batch (data.steps_per_batch above 1): Ctrl-C held back while they
train, and Lightning's per-step hooks called without its per-call cost.

A run stopped by Ctrl-C resumes exactly only if the stop falls between Lightning batches: the
checkpoint counts finished batches, and a batch of K steps half-trained when KeyboardInterrupt
arrives would be trained again from its start on weights that already took some of its steps.
Lightning acts on SIGTERM only between batches, but Python raises KeyboardInterrupt wherever it
lands; so while a group trains, Ctrl-C is only noted, and it is raised before the next group
starts, as a Ctrl-C at a batch's start is with one step a batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor


class CtrlCHold:
    """Note a Ctrl-C during `holding()`; raise it as KeyboardInterrupt when `holding()` is next entered."""

    def __init__(self) -> None:
        self.pending = False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    @contextmanager
    def holding(self) -> Iterator[None]:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        # Only the main thread may set handlers; a handler other than Python's own belongs to
        # someone who wants Ctrl-C their way: leave both alone.
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)


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
        optimizer._on_before_step()  # the manual loop's step count: trainer.global_step
        for hook in self.before_step:
            hook(optimizer.optimizer)
        optimizer.optimizer.step()
        optimizer._on_after_step()


def _overriding(trainer: Trainer, module: LightningModule, name: str) -> list[Callable[..., None]]:
    """Hook `name` of each callback, then of the module, that defines its own, bound to trainer and module."""
    hooks = [partial(getattr(callback, name), trainer, module) for callback in trainer.callbacks
             if getattr(type(callback), name) is not getattr(Callback, name)]
    if getattr(type(module), name) is not getattr(LightningModule, name):
        hooks.append(getattr(module, name))
    return hooks
