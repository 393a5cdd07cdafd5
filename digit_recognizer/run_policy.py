"""What every run gets in code, whatever its config says: the callbacks that make it resumable and
observable, atomic checkpoint files, and DDP collectives that give up instead of hanging.

A recipe (YAML) holds what a user chooses; this holds what a user's own minimal config must not
lose (cli.DigitCLI adds it when it builds the Trainer).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import (
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    RichModelSummary,
    RichProgressBar,
)
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

from digit_recognizer.callbacks import EpochTimer, ReportWriter
from digit_recognizer.checkpoints import AtomicCheckpointIO
from digit_recognizer.names import LAST
from digit_recognizer.resume import EpochEndSchedulerStep, InterruptCheckpoint, RandomStateCheckpoint
from digit_recognizer.runs import TrainingLock
from digit_recognizer.signals import StopOnSignal


def standard_callbacks(trainer_config: dict[str, Any], present: list[Callback]) -> list[Callback]:
    """What every run needs, in code so a user's config cannot lose it; none that `present` has.

    Exact resume (random states, the pending scheduler step, last.ckpt every epoch, a checkpoint on
    Ctrl-C or SIGTERM) and
    what the user sees (epoch times, learning rates, progress, the figures of `report`).
    """
    wanted: list[Callback] = [RandomStateCheckpoint(), EpochEndSchedulerStep(), InterruptCheckpoint(), TrainingLock(),
                              StopOnSignal(), EpochTimer(), ReportWriter()]
    writes_last = any(isinstance(c, ModelCheckpoint) and c.monitor is None and c.filename == Path(LAST).stem for c in present)
    if trainer_config.get("enable_checkpointing") is not False and not writes_last:
        # last.ckpt after every epoch: what --ckpt_path last resumes (save_last writes it only
        # in epochs that improve the monitored metric).
        wanted.append(ModelCheckpoint(filename=Path(LAST).stem, enable_version_counter=False))
    if trainer_config.get("logger") not in (False, None, []):
        wanted.append(LearningRateMonitor(logging_interval="epoch"))
    if trainer_config.get("enable_progress_bar") is not False:
        wanted.append(RichProgressBar())
    if trainer_config.get("enable_model_summary") is not False:
        wanted.append(RichModelSummary(max_depth=2))
    kinds = {RichProgressBar: ProgressBar, RichModelSummary: ModelSummary}
    return [c for c in wanted if isinstance(c, ModelCheckpoint) or not has_callback(present, kinds.get(type(c), type(c)))]


def has_callback(callbacks: list[Callback], kind: type) -> bool:
    return any(isinstance(callback, kind) for callback in callbacks)


def with_atomic_checkpoints(plugins: Any) -> list[Any]:
    """The configured plugins, with AtomicCheckpointIO unless another CheckpointIO is chosen."""
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def with_collective_timeout(strategy: Any) -> Any:
    """A DDP strategy named by string ("ddp", "ddp_spawn", ...) whose collectives give up after
    COLLECTIVE_TIMEOUT, so that processes waiting for each other in vain end with an error within
    minutes (Lightning's default waits 30 minutes, and a signal cannot interrupt the wait)."""
    if isinstance(strategy, str) and strategy in StrategyRegistry:
        entry = StrategyRegistry[strategy]
        if issubclass(entry["strategy"], DDPStrategy) and "timeout" not in entry["init_params"]:
            return entry["strategy"](**entry["init_params"], timeout=collective_timeout())
    return strategy


def collective_timeout() -> timedelta:
    """How long a process waits for the others at a collective call: 5 minutes, or
    $DIGIT_RECOGNIZER_COLLECTIVE_TIMEOUT seconds."""
    return timedelta(seconds=float(os.environ.get("DIGIT_RECOGNIZER_COLLECTIVE_TIMEOUT", 300)))
