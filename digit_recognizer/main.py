"""The process entry (`python -m digit_recognizer`, the `digit-recognizer` script): the overview
`--help`, `--verbose`, which command runs, and the exit status.

Exit status: 0 done; 2 a problem the user can fix (one `error:` line; `--verbose` shows the
traceback); 1 processes of a multi-process run that stopped waiting for each other; 130 after
Ctrl-C and 143 after SIGTERM (signals.exit_status).
"""

from __future__ import annotations

import sys
import warnings

from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from digit_recognizer.cli import DigitCLI
from digit_recognizer.commands import ensemble, export, report
from digit_recognizer.errors import UserError
from digit_recognizer.signals import EXIT_CTRL_C, exit_status, sigterm_raises

COMMANDS = {
    "fit": "train a recipe (default: the reference, cnn.yaml); --ckpt_path last resumes the newest run",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the validation split or a labelled CSV (--data.test_csv)",
    "predict": "write the Kaggle submission (or label your own images with --data.images)",
    "report": "write a run's figures as PNGs from its TensorBoard events: report RUN_DIR",
    "ensemble": "train several networks (--seeds, --recipes, --folds K) and submit their averaged probabilities",
    "export": "write a checkpoint's network as ONNX or TorchScript, with a model card: export --ckpt_path best",
}


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
        "Recipes by name: --config cnn.yaml (the default), quick.yaml, best.yaml, deotte.yaml.",
    ]
    return "\n".join(lines)


def collective_failure(exc: BaseException) -> str | None:
    """One line for a multi-process run whose processes stopped waiting for each other (a
    collective call that timed out, or a process that ended while another waited), else None."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "Timed out" not in first and "Connection closed by peer" not in first:
        return None
    detail = first.split("] ", 1)[-1]  # without gloo's source location
    return (f"the processes of this multi-process run stopped waiting for each other ({detail}); "
            f"the other process's first error line says why")


def main(argv: list[str] | None = None) -> None:
    """Entry point; `--verbose` before the subcommand shows tracebacks of user errors.

    Exit status: 0 done, 2 a user error, 130 after Ctrl-C, 143 after SIGTERM.
    """
    # Lightning 2.6 on torch 2.14 warns about its own use of torch internals: on every batch, and in
    # every all_gather of a multi-process run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"torch.distributed.nn.functional.all_gather is deprecated")
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
        with sigterm_raises():  # exit 143 and clean up outside Lightning's stages too
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
    except (SIGTERMException, KeyboardInterrupt, SystemExit) as exc:  # Lightning ends a stage stopped by Ctrl-C with exit(1)
        status = exit_status(exc)
        if status is None:
            raise
        if status == EXIT_CTRL_C:
            print("interrupted", file=sys.stderr)
        sys.exit(status)
    except RuntimeError as exc:
        reason = collective_failure(exc)
        if reason is None or verbose:
            raise
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
