"""Learning-rate schedules that span the run: a OneCycleLR sized to the run, and kept so on resume.

A OneCycleLR needs its total number of steps up front. A recipe leaves `total_steps` null so the
cycle ends with the run whatever max_epochs, batch size or split the user picks; a resumed run must
then still have the length its saved schedule was built for.
"""

from __future__ import annotations

import math

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LRSchedulerCallable
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from digit_recognizer.errors import UserError


def optimizer_steps(trainer: Trainer, steps_per_batch: int = 1) -> int | float:
    """The run's optimizer steps: Lightning's estimate counts training batches, and a batch of
    `steps_per_batch` K steps (data.steps_per_batch) is K steps but for the epoch's last, which may
    hold fewer."""
    batches = trainer.estimated_stepping_batches
    if steps_per_batch == 1 or trainer.max_epochs == -1 or batches == float("inf"):
        return batches
    loader = trainer.train_dataloader  # built by the estimate above
    images = len(loader.sampler)  # this process's share under DDP
    step_size = loader.batch_size // steps_per_batch
    per_epoch = min(math.ceil(images / step_size), trainer.num_training_batches * steps_per_batch)
    steps = per_epoch * max(trainer.max_epochs, 1)
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps


def build_scheduler(factory: LRSchedulerCallable, optimizer: Optimizer, trainer: Trainer | None,
                    steps_per_batch: int = 1) -> LRScheduler:
    """The configured scheduler; one left without `total_steps` and `epochs` gets the run's step count."""
    settings = getattr(factory, "keywords", {})
    length = {}
    if "total_steps" in settings and settings["total_steps"] is None and settings.get("epochs") is None:
        steps = optimizer_steps(trainer, steps_per_batch) if trainer is not None else float("inf")
        if steps == float("inf"):
            raise UserError("a one-cycle schedule needs a run of known length: set trainer.max_epochs or max_steps")
        length = {"total_steps": int(steps)}
    try:
        return factory(optimizer, **length)
    except ZeroDivisionError:  # OneCycleLR when pct_start x total_steps leaves a phase of no steps
        total = length.get("total_steps", settings.get("total_steps"))
        raise UserError(f"the one-cycle schedule cannot split {total} steps into its phases with "
                        f"pct_start {settings.get('pct_start')}; train for more steps or change pct_start") from None


def check_schedule_length(trainer: Trainer, steps_per_batch: int = 1) -> None:
    """A run-length schedule must span this run: a resumed run keeps its saved length."""
    steps = optimizer_steps(trainer, steps_per_batch)
    for config in trainer.lr_scheduler_configs:
        total = getattr(config.scheduler, "total_steps", None)
        if total is None or total == steps:
            continue
        if trainer.ckpt_path is not None:
            raise UserError(
                f"the resumed run's one-cycle schedule has {total} steps, this run would take {steps} "
                f"(max_epochs, batch size, split or device count changed?); resume with the run's "
                f"settings or start a new run"
            )
        if total < steps:
            raise UserError(f"OneCycleLR total_steps is {total}, shorter than this run's {steps} steps; "
                            f"leave it null to fit the run")
