"""The command line's words: the program's name, option names of earlier versions, recipes by
name after --config, and a misspelt option as one line naming the nearest valid one."""

from __future__ import annotations

import difflib
import re
import sys
import textwrap
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from digit_recognizer.errors import UserError
from digit_recognizer.lightning_internals import option_strings
from digit_recognizer.recipes import recipe_path

PROGRAM = "python -m digit_recognizer"

# Option names of earlier versions, still accepted on the command line: (old, new).
RENAMED_OPTIONS = (
    ("--ensemble.", "--inference."),
    ("--model.teachers", "--model.distillation.teachers"),
    ("--model.distillation_weight", "--model.distillation.weight"),
    ("--model.conv_dropout", "--model.network.init_args.conv_dropout"),
    ("--model.dense_dropout", "--model.network.init_args.dense_dropout"),
)


class OneLineErrorParser(LightningArgumentParser):
    """A misspelt or invalid option is one line naming the nearest valid option and the real
    program, exit status 2 (jsonargparse prints the whole usage, dozens of lines, before it)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a caller that handles ArgumentError itself
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        text = " ".join(str(message).split())
        unknown = re.findall(r"--[\w.-]+", text.partition("nrecognized arguments:")[2])
        options = option_strings(parser)
        nearest = difflib.get_close_matches(unknown[0], options, n=1, cutoff=0.6) if unknown else []
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        program = parser.prog.replace(" [options]", "")
        print(f"error: {textwrap.shorten(text, 400)}{hint} ({program} --help lists the options)", file=sys.stderr)
        sys.exit(2)


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
