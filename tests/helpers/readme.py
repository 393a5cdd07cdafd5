"""The README as a test plan: its `python -m digit_recognizer` lines and what makes each one small."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from helpers.paths import REPO


README = REPO / "README.md"
COMMAND = ["python", "-m", "digit_recognizer"]

# What is appended to a README command to make it small, by subcommand; `ensemble` passes its
# options on to each member's `fit` and to its `predict`. Nothing here turns a default off (the
# model summary and progress bar stay on) or names an output the README line does not.
_DATA = ["--data.data_dir", "data", "--data.download", "false"]
_EPOCH = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2"]
SMALL: dict[str, list[str]] = {
    "--help": [],
    "fit": [*_DATA, *_EPOCH],
    "ensemble": [*_DATA, *_EPOCH],
    "validate": [*_DATA, "--trainer.limit_val_batches", "2"],
    "test": _DATA,
    "predict": _DATA,
    "report": [],  # reads the run folder it is given
    "export": [],  # reads the checkpoint it is given
}
# A README line that needs GPUs (`--trainer.devices N` without `--trainer.accelerator cpu`, or
# `--trainer.accelerator gpu`) runs with these instead: two CPU processes, the DDP of the gloo backend.
ON_THE_CPU = {"--trainer.accelerator": "cpu", "--trainer.devices": "2"}
# Paths in the README that exist only on another machine, and where this test puts them instead.
ELSEWHERE = {"/kaggle/working/": "kaggle_working/"}
# README lines (as written, comment included) that are not run, each with its reason. Keep it short.
SKIPPED: dict[str, str] = {}


@dataclass(frozen=True)
class ReadmeCommand:
    number: int  # line number in README.md
    line: str  # as written

    def __str__(self) -> str:
        return f"README.md:{self.number}: {self.line}"


def readme_commands(text: str) -> list[ReadmeCommand]:
    """Every line of a ```bash block that mentions `python -m digit_recognizer`."""
    commands, in_bash = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        fence = line.strip().startswith("```")
        if fence:
            in_bash = not in_bash and line.strip() == "```bash"
        elif in_bash and " ".join(COMMAND) in line:
            commands.append(ReadmeCommand(number, line.strip()))
    return commands


def arguments(command: ReadmeCommand) -> list[str]:
    """The line's arguments after `python -m digit_recognizer`, as a shell would split them, with
    what makes it small appended and the GPUs it needs replaced by two CPU processes."""
    words = shlex.split(command.line, comments=True)
    if words[:3] != COMMAND or any(word in ("&&", "||", ";", "|", ">") for word in words):
        raise ValueError(f"{command}: not one plain `python -m digit_recognizer ...` command; run it here or "
                         f"add it to SKIPPED with the reason")
    args = words[3:]
    for placeholder, path in ELSEWHERE.items():
        args = [arg.replace(placeholder, path) for arg in args]
    subcommand = subcommand_of(args)
    if subcommand not in SMALL:
        raise ValueError(f"{command}: no entry for {subcommand!r} in SMALL (what makes it small)")
    accelerator, devices = _value(args, "--trainer.accelerator"), _value(args, "--trainer.devices")
    if accelerator in ("gpu", "cuda") or (devices not in (None, "1") and accelerator != "cpu"):
        for option, value in ON_THE_CPU.items():
            if option != "--trainer.devices" or devices not in (None, "1"):  # several devices: two processes
                args = _set(args, option, value)
    return [*args, *SMALL[subcommand]]


def subcommand_of(args: list[str]) -> str | None:
    return next((arg for arg in args if not arg.startswith("--") or arg == "--help"), None)


def _value(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args else None


def _set(args: list[str], option: str, value: str) -> list[str]:
    if option in args:
        i = args.index(option)
        return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, option, value]


def plan() -> list[tuple[ReadmeCommand, list[str] | None]]:
    """(README line, arguments to run it with, or None for a line in SKIPPED), in README order."""
    commands = readme_commands(README.read_text())
    stale = set(SKIPPED) - {command.line for command in commands}
    assert not stale, f"SKIPPED names lines that are no longer in README.md: {sorted(stale)}"
    return [(command, None if command.line in SKIPPED else arguments(command)) for command in commands]
