"""Fixtures every folder uses, the quick tier's guard against processes, and the SIGINT restore.

Helpers (functions, constants) are in tests/helpers/ (`from helpers.cli import run_cli`); fixtures
used by one folder's tests are in that folder's conftest.py (tests/e2e/conftest.py also marks its
tests slow)."""

from __future__ import annotations

import multiprocessing.process
import os
import signal
import subprocess
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.data import sources

from helpers.data import tiny_datamodule, write_tiny_data
from helpers.training import tiny_trainer


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


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """A user without Kaggle credentials (and with the package importable or not, as the test says)."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", sources.DATA_DIR_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Path, Path]:
    """(root with tiny data, a teacher checkpoint trained on its default split)."""
    root = tmp_path_factory.mktemp("teacher")
    data = write_tiny_data(root)
    trainer = tiny_trainer(root, max_epochs=1, enable_checkpointing=False)
    trainer.fit(DigitClassifier(), datamodule=tiny_datamodule(data, root))
    path = root / "teacher.ckpt"
    trainer.save_checkpoint(path)
    return root, path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Tiny data shared by a module's tests (the steps_per_batch runs)."""
    return write_tiny_data(tmp_path_factory.mktemp("step-groups"))


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
        message = (f"{item.nodeid} starts a process: move it to tests/e2e/ (every test there is marked slow), "
                   f"as every test that starts one, itself or through a fixture, must be; "
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
