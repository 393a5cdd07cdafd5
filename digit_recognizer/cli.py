"""The command line: LightningCLI's fit/validate/test/predict with the package's defaults, plus
`report`, `ensemble` and `export`.

What LightningCLI does not do, and this module adds:
- every run starts from the reference recipe (digit_recognizer/recipes/cnn.yaml, the default config), and
  `--config NAME` finds a shipped recipe by name from any folder;
- the callbacks and plugins that make runs resumable and checkpoints safe are set here, in code,
  so a user's own minimal config keeps them;
- `--ckpt_path last` resumes the newest earlier run (and keeps logging into its folder) instead of
  Lightning's default of looking in the new, empty run folder; `best` finds that run's best
  checkpoint;
- checkpoints are read and checked before LightningCLI merges their hyperparameters, so a
  truncated, foreign, newer or older-format file is one line, not a usage dump;
- a checkpoint's recorded inference settings are the defaults of `validate`, `test` and `predict`;
- a command that fails before its work starts leaves no run folder or event file.

The process entry (help, exit codes) is main.py; the argument words, arguments.py; what every run
gets in code, run_policy.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from digit_recognizer.arguments import PROGRAM, OneLineErrorParser, resolve_arguments
from digit_recognizer.callbacks import ClassificationInspector, InferenceAveraging, SubmissionWriter
from digit_recognizer.checkpoints import (
    check_checkpoint,
    check_resume,
    migrate_hyperparameters,
    read_checkpoint,
    recorded_inference,
)
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.lightning_internals import subcommand_parsers
from digit_recognizer.names import EVALUATING_COMMANDS
from digit_recognizer.recipes import default_config
from digit_recognizer.run_policy import standard_callbacks, with_atomic_checkpoints, with_collective_timeout, has_callback
from digit_recognizer.runs import (
    RUN_PREFIX,
    RunConfigSaver,
    RunLogger,
    file_logger,
    find_checkpoint,
    log_root_of,
    run_dir_of,
    training_pid,
)

TRAINER_COMMANDS = ("fit", *EVALUATING_COMMANDS)
DEFAULT_LOGGER = {
    "class_path": "digit_recognizer.runs.RunLogger",
    "init_args": {"save_dir": ".", "name": "lightning_logs", "default_hp_metric": False},
}


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
        if recorded and subcommand in EVALUATING_COMMANDS and self._inference_defaults is None:
            # The run's own views and networks, unless the recipe or the command line names others:
            # parse again with them as the defaults.
            self._inference_defaults = recorded
            subparser = subcommand_parsers(self.parser)[subcommand]
            subparser.set_defaults({f"inference.{key}": value for key, value in recorded.items()})
            self.config = self.parser.parse_args(self._args)
            self.config[subcommand].ckpt_path = ckpt_path  # `last` / `best` as resolved
        known = set(inspect.signature(DigitClassifier.__init__).parameters) - {"self"}
        hparams = migrate_hyperparameters(ckpt_path, contents.get("hyper_parameters", {}), known)
        if not hparams:
            return
        parsers = [self.parser, *subcommand_parsers(self.parser).values()]
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
            if self.subcommand in EVALUATING_COMMANDS:
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
        if logger is not None and run.parent == log_root.resolve() and run.name.startswith(RUN_PREFIX):
            logger.init_args.version = int(run.name.removeprefix(RUN_PREFIX))  # keep logging into that run

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
        config["callbacks"] = configured + [c for c in callbacks if not has_callback(configured, type(c))]
        config["callbacks"] += standard_callbacks(config, present)
        config["plugins"] = with_atomic_checkpoints(config.get("plugins"))
        config["strategy"] = with_collective_timeout(config.get("strategy"))
        return super()._instantiate_trainer(config, [])

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except (UserError, MisconfigurationException):
            # Take back the run folder or event file Lightning created while setting up, unless the
            # run logged metrics before it failed (a full disk at a later checkpoint): then they stay.
            for logger in self.trainer.loggers:
                if isinstance(logger, RunLogger):
                    logger.discard()
            raise
