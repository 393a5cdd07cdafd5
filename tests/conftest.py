"""Shared fixtures: tiny Kaggle-layout CSVs written by the tests themselves."""

from __future__ import annotations

import multiprocessing.process
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.data import KaggleDigitsDataModule
from digit_recognizer.data.csv import write_digits_csv

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "digit_recognizer" / "recipes"  # the shipped recipes
CNN_CONFIG = RECIPES / "cnn.yaml"  # also what a run without --config starts from
# The real competition files, when $DIGIT_RECOGNIZER_DATA names them (CI points it at its copy);
# the variable is then cleared for every test, which choose their data folders themselves.
REAL_DATA = Path(os.environ["DIGIT_RECOGNIZER_DATA"]) if os.environ.get("DIGIT_RECOGNIZER_DATA") else None


@contextmanager
def raises_one_line(kind: type[Exception], match: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """pytest.raises for the package's user errors, which the CLI prints as one line: the message
    must be a single line (and match `match`, as with pytest.raises)."""
    with pytest.raises(kind, match=match) as info:
        yield info
    message = str(info.value)
    assert message and "\n" not in message, f"not one line: {message!r}"


def random_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images whose brightest quadrant pattern depends on the label (so it is learnable)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES
    images = torch.randint(0, 60, (n, IMAGE_SIZE, IMAGE_SIZE), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 4)
        images[i, row * 7 : row * 7 + 7, col * 7 : col * 7 + 7] = 250
    return images, labels


def write_tiny_data(root: Path) -> Path:
    """root/data with a 200-row train.csv and a 50-row test.csv.gz."""
    folder = root / "data"
    folder.mkdir()
    write_digits_csv(folder / "train.csv", *random_digits(200))
    write_digits_csv(folder / "test.csv.gz", random_digits(50, seed=1)[0], None)
    return folder


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_data(tmp_path)


@pytest.fixture(autouse=True)
def no_data_folder_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGIT_RECOGNIZER_DATA", raising=False)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the parsed-CSV cache of every test out of the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


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


def tiny_trainer(root: Path, **settings) -> Trainer:
    """An in-process Trainer for tiny data: 3 training batches an epoch, no logger, no output."""
    return Trainer(default_root_dir=root, limit_train_batches=3, num_sanity_val_steps=0, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, **settings)


def tiny_datamodule(data_dir: Path, tmp_path: Path, **settings) -> KaggleDigitsDataModule:
    return KaggleDigitsDataModule(data_dir=str(data_dir), download=False,
                                  cache_dir=str(tmp_path / "cache"), batch_size=32, **settings)


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a non-interactive shell (`nohup pytest &`, some CI
    runners) inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would
    see nothing happen. Python's own handler here lets the tests and their processes receive it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # jsonargparse finds type stubs with a one-time `python -c` probe of sys.path on the first CLI
    # parse (typeshed_client); made here, before any test, a quick test's in-process CLI starts none.
    try:
        from jsonargparse._stubs_resolver import get_stubs_resolver  # noqa: PLC0415 - private; may move
    except ImportError:
        return
    try:
        get_stubs_resolver()
    except Exception:  # noqa: BLE001 - then jsonargparse does without stubs, and so do the tests
        pass


class ProcessInAQuickTest(RuntimeError):
    """A test not marked `slow` started a process (or tried to)."""


def _refuse_processes(item: pytest.Item, attempts: list[str]) -> Callable[..., None]:
    def refuse(*args: object, **kwargs: object) -> None:
        message = (f"{item.nodeid} starts a process: mark it @pytest.mark.slow (a module of them: pytestmark = "
                   f"pytest.mark.slow), as every test that starts one, itself or through a fixture, must be; "
                   f"`pytest -m \"not slow\"` starts none")
        attempts.append(message + "; it was started here:\n" + "".join(traceback.format_stack(limit=12)[:-1]))
        raise ProcessInAQuickTest(message)
    return refuse


# Every way the standard library starts a process: subprocess (and os.popen) through Popen, os.fork
# and os.spawn* through fork, posix_spawn, os.system, and multiprocessing (DataLoader workers too).
_PROCESS_STARTS = [(subprocess.Popen, "__init__"), (os, "fork"), (os, "forkpty"), (os, "posix_spawn"),
                   (os, "posix_spawnp"), (os, "system"), (multiprocessing.process.BaseProcess, "start")]


@contextmanager
def _no_process_starts(item: pytest.Item) -> Iterator[list[str]]:
    """While a test not marked `slow` is set up, run and torn down, starting a process raises."""
    attempts: list[str] = []
    if item.get_closest_marker("slow") is not None:
        yield attempts
        return
    saved = [(owner, name, owner.__dict__[name]) for owner, name in _PROCESS_STARTS if name in vars(owner)]
    refuse = _refuse_processes(item, attempts)
    for owner, name, _ in saved:
        setattr(owner, name, refuse)
    try:
        yield attempts
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _quick_phase(item: pytest.Item) -> Iterator[None]:
    with _no_process_starts(item) as attempts:
        result = yield
    if attempts:  # refused, but the code that tried caught the error
        raise ProcessInAQuickTest(attempts[0])
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """The quick tier (`pytest -m "not slow"`) starts no process: a test not marked `slow` fails if
    it starts one, in its fixtures (setup and teardown) or in itself."""
    return (yield from _quick_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _quick_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    return (yield from _quick_phase(item))
