"""The README is the test plan: every `python -m digit_recognizer` command in its ```bash blocks
runs as written, in README order, in one fresh folder with tiny data, and exits 0.

Only what makes a command small is appended (SMALL, the one list of it); placeholders the README
names (labelled.csv, my_digits/) are files this test makes first, lightning_logs/version_0 is the
first `fit`'s run folder, paths of another machine (/kaggle/working/) move into the folder
(ELSEWHERE), and a line that needs GPUs runs on two CPU processes instead (ON_THE_CPU); a line
that is then the same command as an earlier one is not run twice. A README line that the plan
cannot run fails the suite, unless SKIPPED names it with its reason; the quick tier checks that
already (test_every_readme_command_has_a_plan).
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, random_digits, run_cli, write_tiny_data
from digit_recognizer.data.csv import write_digits_csv

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
# README lines documented to exit with another status than 0.
EXIT_STATUS: dict[str, int] = {}


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


def same_command(args: list[str]) -> tuple:
    """The arguments with the order of their options ignored: two README lines that are the same
    command once made small (and moved to the CPU) are run once."""
    groups: list[list[str]] = [[]]
    for arg in args:
        if arg.startswith("--") and arg != "--help":
            groups.append([])
        groups[-1].append(arg)
    return (tuple(groups[0]), *sorted(tuple(group) for group in groups[1:]))


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


def make_placeholders(root: Path) -> None:
    """The files the README's commands name as examples, in the folder they run in."""
    write_tiny_data(root)
    write_digits_csv(root / "labelled.csv", *random_digits(30, seed=2))  # test --data.test_csv labelled.csv
    digits = root / "my_digits"  # predict --data.images my_digits/
    digits.mkdir()
    images, _ = random_digits(4, seed=3)
    for i, image in enumerate(images):
        Image.fromarray(image.numpy()).save(digits / f"digit_{i}.png")
    for path in ELSEWHERE.values():
        (root / path).mkdir(parents=True, exist_ok=True)


def test_every_readme_command_has_a_plan():
    """Quick: each `python -m digit_recognizer` line of the README's bash blocks is one the slow test
    below can run (a known subcommand, nothing but the command on its line), or is in SKIPPED."""
    planned = plan()
    assert len(planned) >= 10, f"found only {len(planned)} commands in README.md's ```bash blocks"
    subcommands = {subcommand_of(args) for _, args in planned if args}
    assert {"fit", "predict", "ensemble"} <= subcommands


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path):
    make_placeholders(tmp_path)
    failures, ran, times, done = [], [], [], {}
    for command, args in plan():
        if args is None:
            continue
        if same_command(args) in done:
            times.append(f"  same as README.md:{done[same_command(args)]}  {command}")
            ran.append(command.line)
            continue
        done[same_command(args)] = command.number
        if subcommand_of(args) == "report" and not (tmp_path / "lightning_logs" / "version_0").is_dir():
            failures.append(f"{command}\n  no lightning_logs/version_0: no `fit` before it in README order")
        start = time.monotonic()
        result = run_cli(*args, cwd=tmp_path, check=False, timeout=300)
        times.append(f"{time.monotonic() - start:6.1f} s  {command}")
        ran.append(command.line)
        expected = EXIT_STATUS.get(command.line, 0)
        if result.returncode != expected:
            failures.append(f"{command}\n  ran: python -m digit_recognizer {shlex.join(args)}\n"
                            f"  exit {result.returncode}, not {expected}\n  stdout: {result.stdout[-1500:]}\n"
                            f"  stderr: {result.stderr[-2500:]}")
        elif expected == 0 and _value(args, "--submission.path"):
            if not (tmp_path / _value(args, "--submission.path")).is_file():
                failures.append(f"{command}\n  exit 0 but no {_value(args, '--submission.path')} written")
    print("\n".join(times))
    every = [command.line for command in readme_commands(README.read_text())]
    not_run = [line for line in every if line not in ran and line not in SKIPPED]
    assert not not_run, f"README commands neither run nor in SKIPPED: {not_run}"
    assert not failures, f"{len(failures)} README command(s) failed:\n\n" + "\n\n".join(failures)
