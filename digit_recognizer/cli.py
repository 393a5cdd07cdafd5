"""The command line: LightningCLI's fit/validate/test/predict with the package's defaults, plus
`report`, `ensemble` and `export`.

What LightningCLI does not do, and this module adds:
- every run starts from the reference recipe (configs/cnn.yaml, the default config), and
  `--config NAME` finds a shipped recipe by name from any folder;
- the callbacks and plugins that make runs resumable and checkpoints safe are set here, in code,
  so a user's own minimal config keeps them;
- `--ckpt_path last` resumes the newest earlier run (and keeps logging into its folder) instead of
  Lightning's default of looking in the new, empty run folder; `best` finds that run's best
  checkpoint;
- checkpoints are read and checked before LightningCLI merges their hyperparameters, so a
  truncated, foreign, newer or older-format file is one line, not a usage dump;
- problems the user can fix are printed as one line with exit status 2 (`--verbose` shows the
  traceback), and a command that fails before its work starts leaves no run folder or event file.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import signal
import sys
import textwrap
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import ArgumentError
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import (
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    RichModelSummary,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from digit_recognizer.callbacks import (
    ClassificationInspector,
    EpochEndSchedulerStep,
    EpochTimer,
    InferenceAveraging,
    InterruptCheckpoint,
    RandomStateCheckpoint,
    ReportWriter,
    RunConfigSaver,
    SubmissionWriter,
)
from digit_recognizer.callbacks import stop_on_signal
from digit_recognizer.callbacks.run_lock import TrainingLock, training_pid
from digit_recognizer.checkpoints import (
    AtomicCheckpointIO,
    check_checkpoint,
    check_resume,
    migrate_hyperparameters,
    read_checkpoint,
    recorded_inference,
)
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.recipes import default_config, recipe_path
from digit_recognizer.names import LAST
from digit_recognizer.runs import RunLogger, file_logger, find_checkpoint, log_root_of, run_dir_of

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
EVALUATING = ("validate", "test", "predict")
DEFAULT_LOGGER = {
    "class_path": "digit_recognizer.runs.RunLogger",
    "init_args": {"save_dir": ".", "name": "lightning_logs", "default_hp_metric": False},
}

# Option names of earlier versions, still accepted on the command line: (old, new).
RENAMED_OPTIONS = (
    ("--ensemble.", "--inference."),
    ("--model.teachers", "--model.distillation.teachers"),
    ("--model.distillation_weight", "--model.distillation.weight"),
    ("--model.conv_dropout", "--model.network.init_args.conv_dropout"),
    ("--model.dense_dropout", "--model.network.init_args.dense_dropout"),
)

COMMANDS = {
    "fit": "train a recipe (default: the reference, cnn.yaml); --ckpt_path last resumes the newest run",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the validation split or a labelled CSV (--data.test_csv)",
    "predict": "write the Kaggle submission (or label your own images with --data.images)",
    "report": "write a run's figures as PNGs from its TensorBoard events: report RUN_DIR",
    "ensemble": "train several networks (--seeds, --recipes) and submit their averaged probabilities",
    "export": "write a checkpoint's network as ONNX or TorchScript, with a model card: export --ckpt_path best",
}


PROGRAM = "python -m digit_recognizer"


class OneLineErrorParser(LightningArgumentParser):
    """A misspelt or invalid option is one line naming the nearest valid option and the real
    program, exit status 2 (jsonargparse prints the whole usage, dozens of lines, before it)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a caller that handles ArgumentError itself
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        text = " ".join(str(message).split())
        unknown = re.findall(r"--[\w.-]+", text.partition("nrecognized arguments:")[2])
        options = [option for action in parser._actions for option in action.option_strings]
        nearest = difflib.get_close_matches(unknown[0], options, n=1, cutoff=0.6) if unknown else []
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        program = parser.prog.replace(" [options]", "")
        print(f"error: {textwrap.shorten(text, 400)}{hint} ({program} --help lists the options)", file=sys.stderr)
        sys.exit(2)


class DigitCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, run: bool = True,
                 inference_defaults: dict[str, Any] | None = None) -> None:
        """`inference_defaults`: a checkpoint's recorded inference settings, below the recipe's and
        the command line's (for `export`, which reads its checkpoint itself)."""
        defaults = {"default_config_files": [str(default_config())]}
        if args is not None:
            args = resolve_arguments(list(args))
        self._args = args
        self._inference_defaults = inference_defaults
        super().__init__(
            DigitClassifier,
            KaggleDigitsDataModule,
            save_config_callback=RunConfigSaver,  # written once training starts: a refused resume keeps the old one
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its own config.yaml
            trainer_defaults={"devices": 1, "logger": DEFAULT_LOGGER},
            parser_kwargs={"prog": PROGRAM, **{command: dict(defaults) for command in TRAINER_COMMANDS}} if run
            else {"prog": PROGRAM, **defaults},
            parser_class=OneLineErrorParser,
            auto_configure_optimizers=False,  # the model's optimizer/scheduler arguments choose them
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always present, so `--submission.path my.csv` works without editing the callback list.
        parser.add_lightning_class_args(SubmissionWriter, "submission")
        parser.add_lightning_class_args(InferenceAveraging, "inference")  # checkpoints and shifts to average
        parser.add_lightning_class_args(ClassificationInspector, "inspection")  # what TensorBoard shows
        # One setting for how many optimizer steps a training batch carries: the loader and the module must agree.
        parser.link_arguments("data.steps_per_batch", "model.steps_per_batch")
        if self._inference_defaults:
            parser.set_defaults({f"inference.{key}": value for key, value in self._inference_defaults.items()})

    def _parse_ckpt_path(self) -> None:
        """Read the checkpoint once, in one-line terms, and merge its (migrated) hyperparameters.

        Replaces LightningCLI's own merge, which loads the file unchecked and lets a mismatch end
        in a jsonargparse usage message.
        """
        self._checkpoint_read: tuple[str, dict] | None = None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        contents = read_checkpoint(ckpt_path)
        self._checkpoint_read = (ckpt_path, contents)
        recorded = recorded_inference(contents)
        if recorded and subcommand in EVALUATING and self._inference_defaults is None:
            # The run's own views and networks, unless the recipe or the command line names others:
            # parse again with them as the defaults.
            self._inference_defaults = recorded
            subparser = self.parser._subcommands_action._name_parser_map[subcommand]
            subparser.set_defaults({f"inference.{key}": value for key, value in recorded.items()})
            self.config = self.parser.parse_args(self._args)
            self.config[subcommand].ckpt_path = ckpt_path  # `last` / `best` as resolved
        known = set(inspect.signature(DigitClassifier.__init__).parameters) - {"self"}
        hparams = migrate_hyperparameters(ckpt_path, contents.get("hyper_parameters", {}), known)
        if not hparams:
            return
        parsers = [self.parser, *getattr(self.parser._subcommands_action, "_name_parser_map", {}).values()]
        exits = [parser.exit_on_error for parser in parsers]
        try:  # an ArgumentError instead of jsonargparse's usage message and exit
            for parser in parsers:
                parser.exit_on_error = False
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except (ArgumentError, SystemExit) as exc:
            reason = " ".join(str(exc).split())[:200] or "its settings do not parse"
            raise CheckpointError(f"{ckpt_path}: this version cannot use the checkpoint's model settings ({reason})") from None
        finally:
            for parser, exit_on_error in zip(parsers, exits):
                parser.exit_on_error = exit_on_error

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
        log_root = log_root_of(config.trainer)
        if ckpt_path in ("last", "best"):  # a file only now: merge its settings as for a named one
            config.ckpt_path = ckpt_path = str(find_checkpoint(log_root, ckpt_path))
            self._parse_ckpt_path()
            config = self.config[self.subcommand]
        if not Path(ckpt_path).is_file():
            raise CheckpointError(f"{ckpt_path}: checkpoint file not found")
        run = run_dir_of(ckpt_path)
        pid = training_pid(run) if self.subcommand == "fit" else None
        if pid is not None:
            raise CheckpointError(f"{run} is still training (process {pid}); resume it once that run has stopped")
        logger = file_logger(config.trainer.logger)
        if logger is not None and run.parent == log_root.resolve() and run.name.startswith("version_"):
            logger.init_args.version = int(run.name.removeprefix("version_"))  # keep logging into that run

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
        if ckpt_path is not None:  # fail in one line here rather than deep inside Lightning's loading
            path, contents = self._checkpoint_read or (None, None)
            contents = contents if path == ckpt_path else read_checkpoint(ckpt_path)
            check_checkpoint(ckpt_path, self.model, contents)
            if self.subcommand == "fit":
                check_resume(ckpt_path, contents, self.model, self.datamodule)
            self._checkpoint_read = None

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """The configured callbacks, then the package's standard ones that the config lacks."""
        configured = list(config.get("callbacks") or [])
        present = [*configured, *callbacks]
        config["callbacks"] = configured + [c for c in callbacks if not _has(configured, type(c))]
        config["callbacks"] += standard_callbacks(config, present)
        config["plugins"] = _with_atomic_checkpoints(config.get("plugins"))
        config["strategy"] = with_collective_timeout(config.get("strategy"))
        return super()._instantiate_trainer(config, [])

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except (UserError, MisconfigurationException):
            # Nothing was trained or written: take back the run folder or event file Lightning
            # created while setting up.
            for logger in self.trainer.loggers:
                if isinstance(logger, RunLogger):
                    logger.discard()
            raise


def standard_callbacks(trainer_config: dict[str, Any], present: list[Callback]) -> list[Callback]:
    """What every run needs, in code so a user's config cannot lose it; none that `present` has.

    Exact resume (random states, the pending scheduler step, last.ckpt every epoch, a checkpoint on
    Ctrl-C or SIGTERM) and
    what the user sees (epoch times, learning rates, progress, the figures of `report`).
    """
    wanted: list[Callback] = [RandomStateCheckpoint(), EpochEndSchedulerStep(), InterruptCheckpoint(), TrainingLock(),
                              stop_on_signal.StopOnSignal(), EpochTimer(), ReportWriter()]
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
    return [c for c in wanted if isinstance(c, ModelCheckpoint) or not _has(present, kinds.get(type(c), type(c)))]


def _has(callbacks: list[Callback], kind: type) -> bool:
    return any(isinstance(callback, kind) for callback in callbacks)


def _with_atomic_checkpoints(plugins: Any) -> list[Any]:
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


def collective_failure(exc: BaseException) -> str | None:
    """One line for a multi-process run whose processes stopped waiting for each other (a
    collective call that timed out, or a process that ended while another waited), else None."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "Timed out" not in first and "Connection closed by peer" not in first:
        return None
    detail = first.split("] ", 1)[-1]  # without gloo's source location
    return (f"the processes of this multi-process run stopped waiting for each other ({detail}); "
            f"the other process's first error line says why")


def resolve_arguments(argv: list[str]) -> list[str]:
    """Recipe names after --config made paths; renamed options spelled the current way."""
    resolved = []
    for i, arg in enumerate(argv):
        if i > 0 and argv[i - 1] in ("--config", "-c"):
            arg = str(recipe_path(arg))
        elif arg.startswith("--config="):
            arg = f"--config={recipe_path(arg.removeprefix('--config='))}"
        elif arg.startswith("--data.fallback_dirs"):
            raise UserError("--data.fallback_dirs is gone: name the data folder with --data.data_dir "
                            "or the DIGIT_RECOGNIZER_DATA environment variable")
        for old, new in RENAMED_OPTIONS:
            if arg.startswith(old) and not arg.startswith(new):
                print(f"note: {old}… is now spelled {new}…", file=sys.stderr)
                arg = new + arg.removeprefix(old)
        resolved.append(arg)
    return resolved


def overview() -> str:
    """`python -m digit_recognizer --help`: every subcommand, LightningCLI's and the package's."""
    width = max(map(len, COMMANDS))
    lines = [
        "usage: python -m digit_recognizer [--verbose] SUBCOMMAND [options]",
        "",
        "Train a CNN for Kaggle's Digit Recognizer, inspect it in TensorBoard, write the submission.",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()),
        "",
        "options:",
        f"  {'--verbose':<{width}}  show the traceback of an error (before the subcommand)",
        f"  {'-h, --help':<{width}}  this message; SUBCOMMAND --help lists a subcommand's options",
        "",
        "Recipes by name: --config cnn.yaml (the default), quick.yaml, best.yaml, strong.yaml.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point; `--verbose` before the subcommand shows tracebacks of user errors.

    Exit status: 0 done, 2 a user error, 130 after Ctrl-C, 143 after SIGTERM.
    """
    # Lightning 2.6 on torch 2.14 warns about its own use of a torch internal on every batch.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # validate/test/predict with best.yaml: the checkpoint's state_dict already holds the
    # averaged weights, which is what these commands should use.
    warnings.filterwarnings("ignore", message=r"You're using the WeightAveraging callback, but loading a checkpoint")
    # ... and without the recipe (its inference settings come from the checkpoint), Lightning asks
    # for the training callbacks, which evaluating does not need.
    warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create")
    # The training loader resumes in mid-epoch through the DataModule's state (data/resumable.py),
    # not through Lightning's stateful-loader protocol, which Lightning checks for.
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")
    # val_fraction 0 (every row trains): the data module returns no validation batches on purpose.
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
    # Every DigitCLI below gets its arguments from `args` on purpose (without --verbose, or one per
    # `ensemble` run); LightningCLI would warn that sys.argv holds arguments too.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] == "--verbose"  # validate/test have their own --verbose
    if verbose:
        argv.pop(0)
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        sys.exit(0 if argv else 2)
    try:
        from digit_recognizer.commands import ensemble, export, report  # noqa: PLC0415 - only when used

        with stop_on_signal.sigterm_raises():  # exit 143 and clean up outside Lightning's stages too
            if argv[0] == "report":  # not a Trainer subcommand: it only reads a finished run's files
                return report.main(argv[1:])
            if argv[0] == "ensemble":  # one `fit` per member, then `predict` with all of them
                return ensemble.main(argv[1:], DigitCLI)
            if argv[0] == "export":
                return export.main(argv[1:], DigitCLI)
            DigitCLI(args=argv)
    except (UserError, MisconfigurationException) as exc:  # Lightning's: settings that contradict
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:  # Lightning stopped gracefully (and InterruptCheckpoint saved the run)
        sys.exit(128 + signal.SIGTERM)
    except SystemExit as exc:  # Lightning ends a stage stopped by Ctrl-C with exit(1)
        if stop_on_signal.interrupted_by_ctrl_c and exc.code == 1:
            print("interrupted", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except RuntimeError as exc:
        reason = collective_failure(exc)
        if reason is None or verbose:
            raise
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
