"""The command line in subprocesses, as a user runs it: `python -m digit_recognizer ARGS`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from helpers.paths import CNN_CONFIG, TESTS

# For a subprocess that loads a test callback (`--trainer.callbacks+=helpers.signal_at.SignalAt`,
# `helpers.probes.X`): pass it as run_cli's or start_cli's `env`; the test's own process is left as it is.
TESTS_ON_PATH = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def run_cli(*args: str, cwd: Path, check: bool = True, timeout: float = 240,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m digit_recognizer ARGS` in a subprocess, as a user would run it (`env`: variables
    to set beside the test's own)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "digit_recognizer", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def start_cli(*args: str, cwd: Path, prelude: str = "", env: dict | None = None,
              new_session: bool = False) -> subprocess.Popen:
    """`python -m digit_recognizer ARGS` in the background; `prelude` runs first (to inject a hang or a
    signal). `new_session`: in a process group of its own, which the test can search and kill."""
    # A shell's background job (nohup, CI runners) starts with SIGINT ignored, and Python then never
    # turns it into KeyboardInterrupt; a user's terminal does: restore that, as Ctrl-C is what we test.
    code = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + prelude
            + "\nfrom digit_recognizer.main import main\nmain()\n")
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=new_session,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode} before {path} appeared:\n{process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def tiny_run_args(data_dir: Path, *extra: str, config: Path = CNN_CONFIG) -> list[str]:
    """A config (default: the reference) on tiny data: one short epoch, no fetching, nothing outside tmp."""
    return [
        "--config", str(config),
        "--data.data_dir", str(data_dir),
        "--data.download", "false",
        "--data.batch_size", "32",
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "3",
        "--trainer.enable_model_summary", "false",
        *extra,
    ]


def workdir_args(root: Path, *extra: str) -> list[str]:
    """tiny_run_args for root/data, with the parsed-CSV cache in root/cache."""
    return tiny_run_args(root / "data", "--data.cache_dir", str(root / "cache"), *extra)


def default_run_args(data_dir: Path, *extra: str, config: Path = CNN_CONFIG) -> list[str]:
    """tiny_run_args with every default a user has on (the model summary too)."""
    args = tiny_run_args(data_dir, *extra, config=config)
    at = args.index("--trainer.enable_model_summary")
    del args[at : at + 2]
    return args


def group_survivors(group: int) -> list[str]:
    """Command lines of the live processes of process group `group` (from /proc: no psutil)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp
            if int(fields[2]) == group and fields[0] != "Z":
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:300])
    return found
