"""Whole `fit` runs in the test's own process, with data.steps_per_batch K."""

from __future__ import annotations

from pathlib import Path

from digit_recognizer.cli import DigitCLI

from helpers.cli import tiny_run_args
from helpers.paths import RECIPES


def train(data_dir: Path, root: Path, steps_per_batch: int, *extra: str, recipe: str = "cnn.yaml",
          epochs: int = 3) -> DigitCLI:
    """A whole `fit` of `recipe` in this process; returns the CLI with its trained module and Trainer."""
    args = tiny_run_args(data_dir, "--trainer.accelerator", "cpu", "--trainer.deterministic", "true",
                         "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "1.0",
                         "--trainer.enable_progress_bar", "false",
                         "--trainer.logger.init_args.save_dir", str(root),
                         "--data.steps_per_batch", str(steps_per_batch), *extra, config=RECIPES / recipe)
    return DigitCLI(args=["fit", *args])
