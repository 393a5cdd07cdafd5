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

import shlex
import time
from pathlib import Path

from PIL import Image

from digit_recognizer.data.csv import write_digits_csv

from helpers.cli import run_cli
from helpers.data import random_digits, write_tiny_data
from helpers.readme import ELSEWHERE, README, SKIPPED, _value, plan, readme_commands, subcommand_of


# README lines documented to exit with another status than 0.
EXIT_STATUS: dict[str, int] = {}


def same_command(args: list[str]) -> tuple:
    """The arguments with the order of their options ignored: two README lines that are the same
    command once made small (and moved to the CPU) are run once."""
    groups: list[list[str]] = [[]]
    for arg in args:
        if arg.startswith("--") and arg != "--help":
            groups.append([])
        groups[-1].append(arg)
    return (tuple(groups[0]), *sorted(tuple(group) for group in groups[1:]))


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
