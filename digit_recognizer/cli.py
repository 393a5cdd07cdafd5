"""The command line: LightningCLI's fit/validate/test/predict, run-aware checkpoint paths, `report`.

`--ckpt_path last` resumes the newest earlier run (and keeps logging into its folder) instead of
Lightning's default of looking in the new, empty run folder; `best` finds that run's best
checkpoint. Problems the user can fix are printed as one line (`--verbose` shows the traceback).
"""

from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from digit_recognizer import report, seed_ensemble
from digit_recognizer.callbacks import InferenceEnsemble, RunConfigSaver, SubmissionWriter
from digit_recognizer.checkpoints import check_checkpoint, read_checkpoint
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.module import DigitClassifier
from digit_recognizer.runs import find_checkpoint, run_dir_of

EVALUATING = ("validate", "test", "predict")
_FILE_LOGGERS = ("TensorBoardLogger", "CSVLogger")


class DigitCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            DigitClassifier,
            KaggleDigitsDataModule,
            save_config_callback=RunConfigSaver,  # written once training starts: a refused resume keeps the old one
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its own config.yaml
            auto_configure_optimizers=False,  # the model's optimizer/scheduler arguments choose them
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always present, so `--submission.path my.csv` works without editing the callback list.
        parser.add_lightning_class_args(SubmissionWriter, "submission")
        parser.add_lightning_class_args(InferenceEnsemble, "ensemble")  # checkpoints and shifts to average

    def parse_arguments(self, parser: LightningArgumentParser, args: object) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads a checkpoint file's hyperparameters right after parsing: a truncated or
        # foreign file must be a one-line error before that.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._checkpoint_read: tuple[str, dict] | None = None  # kept for the architecture check
        if ckpt_path and Path(ckpt_path).is_file():
            self._checkpoint_read = (ckpt_path, read_checkpoint(ckpt_path))

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        config = self.config[self.subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            if self.subcommand in EVALUATING:
                raise CheckpointError(
                    f"{self.subcommand} needs --ckpt_path: a checkpoint file, or 'best' or 'last' of the newest run"
                )
            return
        logger = _file_logger(config.trainer.logger)
        log_root = _log_root(logger, config.trainer.default_root_dir)
        if ckpt_path in ("last", "best"):
            ckpt_path = str(find_checkpoint(log_root, ckpt_path))
            config.ckpt_path = ckpt_path
        if not Path(ckpt_path).is_file():
            raise CheckpointError(f"{ckpt_path}: checkpoint file not found")
        run = run_dir_of(ckpt_path)
        if logger is not None and run.parent == log_root.resolve() and run.name.startswith("version_"):
            logger.init_args.version = int(run.name.removeprefix("version_"))  # keep logging into that run

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
        if ckpt_path is not None:  # fail in one line here rather than deep inside Lightning's loading
            path, contents = self._checkpoint_read or (None, None)
            check_checkpoint(ckpt_path, self.model, contents if path == ckpt_path else None)
            self._checkpoint_read = None


def _file_logger(logger: object) -> Namespace | None:
    """The configured TensorBoard or CSV logger, when exactly one is given as class_path/init_args."""
    if isinstance(logger, list) and len(logger) == 1:
        logger = logger[0]
    if isinstance(logger, Namespace) and str(logger.get("class_path", "")).endswith(_FILE_LOGGERS):
        return logger
    return None


def _log_root(logger: Namespace | None, default_root_dir: str | None) -> Path:
    """The folder that holds the version_N run folders."""
    if logger is None:  # Lightning's default logger
        return Path(default_root_dir or ".") / "lightning_logs"
    args = logger.init_args
    return Path(args.get("save_dir") or default_root_dir or ".") / (args.get("name") or "")


def main(argv: list[str] | None = None) -> None:
    """Entry point; `--verbose` before the subcommand shows tracebacks of user errors.

    Exit status: 0 done, 2 a user error, 1 after Ctrl-C during a Lightning stage (Lightning's own
    graceful stop), 130 after Ctrl-C before or after one, 143 after SIGTERM.
    """
    # Lightning 2.6 on torch 2.14 warns about its own use of a torch internal on every batch.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # validate/test/predict with configs/best.yaml: the checkpoint's state_dict already holds the
    # averaged weights, which is what these commands should use.
    warnings.filterwarnings("ignore", message=r"You're using the WeightAveraging callback, but loading a checkpoint")
    # val_fraction 0 (every row trains): the data module returns no validation batches on purpose.
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
    # Every DigitCLI below gets its arguments from `args` on purpose (without --verbose, or one per
    # `ensemble` run); LightningCLI would warn that sys.argv holds arguments too.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] == "--verbose"  # validate/test have their own --verbose
    if verbose:
        argv.pop(0)
    try:
        if argv[:1] == ["report"]:  # not a Trainer subcommand: it only reads a finished run's files
            return report.main(argv[1:])
        if argv[:1] == ["ensemble"]:  # one `fit` per seed, then `predict` with all of them
            return seed_ensemble.main(argv[1:], DigitCLI)
        DigitCLI(args=argv)
    except (UserError, MisconfigurationException) as exc:  # Lightning's: settings that contradict
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:  # Lightning stopped gracefully (and InterruptCheckpoint saved the run)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
