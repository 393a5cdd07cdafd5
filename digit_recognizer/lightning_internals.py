"""Every private part of Lightning (and of the libraries under LightningCLI) that the package uses:
reached only through this module, each with the reason no public API serves.

`lightning` is pinned to the minor release these were checked against (setup.cfg); after an
upgrade, `check_available()` (run by tests/unit/test_lightning_internals.py) names the first one
that moved, instead of a resume that silently stops being exact.
"""

from __future__ import annotations

from collections.abc import Callable

from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter


def epoch_batches_all_fetched(trainer: Trainer) -> bool:
    """Whether the training loop has fetched the epoch's last batch (trained or not).

    EpochEndSchedulerStep must tell a checkpoint written before the epoch-end scheduler step from
    one written inside the epoch: Lightning skips that step on restart (issues #1772, #14699) and
    exposes no public "epoch complete" state between the last batch and the step.
    """
    return trainer.fit_loop.epoch_loop._num_ready_batches_reached()


def batches_that_stepped(trainer: Trainer) -> int:
    """The step Lightning's logger writes epoch-level metrics at (`_TrainingEpochLoop._batches_that_stepped`):
    per-class scores and images logged on the same step line up with them in TensorBoard."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def count_optimizer_step(optimizer: LightningOptimizer, step: Callable[[], object]) -> None:
    """Take `step` and count it as Lightning's optimizer wrapper does (`trainer.global_step`), without
    the wrapper's per-call hooks (training/multi_step.py: DirectSteps). Lightning offers no public
    counter for a step taken on the wrapped optimizer itself."""
    optimizer._on_before_step()
    step()
    optimizer._on_after_step()


def summary_file_writer(writer: SummaryWriter) -> object:
    """The FileWriter under a SummaryWriter: the HParams plugin's summaries go through `add_summary`,
    which SummaryWriter does not expose (Lightning's own log_hyperparams does the same)."""
    return writer._get_file_writer()


def subcommand_parsers(parser: ArgumentParser) -> dict[str, ArgumentParser]:
    """LightningCLI's parser of each subcommand (jsonargparse keeps them in its subcommands action):
    a checkpoint's recorded settings become defaults of that subcommand's parser."""
    action = parser._subcommands_action
    return dict(getattr(action, "_name_parser_map", {})) if action is not None else {}


def option_strings(parser: ArgumentParser) -> list[str]:
    """Every option a parser knows, for 'did you mean' (argparse keeps them in `_actions`)."""
    return [option for action in parser._actions for option in action.option_strings]


# Private methods the package overrides, by class: cli.DigitCLI reads and checks a checkpoint before
# LightningCLI merges it (`_parse_ckpt_path`), adds the standard callbacks in code
# (`_instantiate_trainer`) and takes back an unused run folder on failure (`_run_subcommand`);
# runs.RunLogger claims its folder with one mkdir (`_get_next_version`; TensorBoardLogger picks
# "highest + 1" and creates it later) and reads its writer (`_experiment`).
OVERRIDDEN: dict[type, tuple[str, ...]] = {
    LightningCLI: ("_parse_ckpt_path", "_instantiate_trainer", "_run_subcommand"),
    TensorBoardLogger: ("_get_next_version",),
}


def check_available(trainer: Trainer, optimizer: LightningOptimizer, writer: SummaryWriter,
                    parser: ArgumentParser) -> None:
    """Touch every private part above; an AttributeError names the one an upgrade moved."""
    for cls, names in OVERRIDDEN.items():
        for name in names:
            if not callable(getattr(cls, name, None)):
                raise AttributeError(f"{cls.__qualname__}.{name} is gone: see digit_recognizer/lightning_internals.py")
    epoch_batches_all_fetched(trainer)
    batches_that_stepped(trainer)
    for name in ("_on_before_step", "_on_after_step"):
        if not callable(getattr(optimizer, name, None)):
            raise AttributeError(f"LightningOptimizer.{name} is gone: see digit_recognizer/lightning_internals.py")
    summary_file_writer(writer)
    subcommand_parsers(parser)
    option_strings(parser)
    if not hasattr(TensorBoardLogger(save_dir="."), "_experiment"):
        raise AttributeError("TensorBoardLogger._experiment is gone: see digit_recognizer/lightning_internals.py")
