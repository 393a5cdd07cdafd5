"""`ensemble --seeds 1 2 3 [--recipes cnn.yaml strong.yaml] [--parallel N] FIT_ARGS...`: several
networks, then the submission of their averaged probabilities.

Each member (every recipe with every seed) is an ordinary `fit` run with its own
lightning_logs/version_N, so one that finished can be scored or resumed alone. Members that differ
(network, augmentation, seed) make mistakes that differ, which is what averaging gains from. Any
other argument goes to every `fit` and to the final `predict`, e.g. `--data.val_fraction 0.1` or
`--inference.shifts [[1,0],[-1,0]]`. The submission uses the first recipe's inference settings.

`--parallel N` trains N members at once in separate processes: one per GPU when there are GPUs
(data-parallel DDP does not speed a batch of 86 up; a member per device does), else N CPU processes
sharing the cores. With `--distill`, one more network (the first member's recipe and seed) learns
from all of them (`model.distillation.teachers`), and the submission is that single network's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.callbacks.submission import check_writable
from digit_recognizer.constants import TEST_FILE
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.runs import RunLogger, log_root_of, member_checkpoint


@dataclass(frozen=True)
class Member:
    recipe: str | None  # None: the recipe of the common arguments (or the default)
    seed: int

    def args(self, common: list[str]) -> list[str]:
        recipe = ["--config", self.recipe] if self.recipe else []
        return [*recipe, *common, "--seed_everything", str(self.seed)]

    def __str__(self) -> str:
        return f"seed {self.seed}" + (f", {self.recipe}" if self.recipe else "")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m digit_recognizer ensemble",
        description="Train several networks and write the submission of their averaged probabilities.",
        epilog="Other arguments go to fit and predict, e.g. --config best.yaml --submission.path ens.csv",
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="training seeds, one network each")
    parser.add_argument("--recipes", nargs="+",
                        help="recipes to train, each with every seed (e.g. best.yaml strong.yaml); default: --config's")
    parser.add_argument("--parallel", type=int, default=1,
                        help="members trained at once: one per GPU, else CPU processes sharing the cores (default 1)")
    parser.add_argument("--distill", action="store_true",
                        help="then train one more network taught by the others, and submit its predictions")
    options, rest = parser.parse_known_args(argv)
    if options.parallel < 1:
        parser.error(f"--parallel must be at least 1, not {options.parallel}")
    if options.recipes and any(arg in ("--config", "-c") or arg.startswith("--config=") for arg in rest):
        parser.error("give the recipes with --recipes or one --config, not both")
    return options, rest


def main(argv: list[str], cli_class: type[LightningCLI]) -> None:
    """Fit every member with `cli_class`, then predict with all of their checkpoints."""
    options, args = parse_args(argv)
    members = [Member(recipe, seed) for recipe in options.recipes or [None] for seed in options.seeds]
    log_root = check_before_training(cli_class, members[0].args(args))
    if options.parallel > 1 and len(members) > 1:
        checkpoints = fit_in_parallel(members, args, log_root, options.parallel)
    else:
        checkpoints = [fit_one(cli_class, member.args(args)) for member in members]
    for member, checkpoint in zip(members, checkpoints):
        print(f"ensemble member ({member}): {checkpoint}")
    first = members[0]
    if options.distill:
        student = fit_one(cli_class, [*first.args(args), "--model.distillation.teachers", json.dumps(checkpoints)])
        print(f"distilled network ({first}): {student}")
        cli_class(args=["predict", *first.args(args), "--ckpt_path", student])
        return
    cli_class(args=["predict", *first.args(args), "--ckpt_path", checkpoints[0],
                    "--inference.checkpoints", json.dumps(checkpoints[1:])])


def check_before_training(cli_class: type[LightningCLI], args: list[str]) -> Path:
    """What would fail after hours of training fails now: the test images and the submission's path.

    Returns the folder of the run folders.
    """
    cli = cli_class(args=args, run=False)
    data = cli.datamodule
    if not data.hparams.predict_csv and not data.hparams.images:
        test_csv = data.csv_path(TEST_FILE)
        if not test_csv.is_file():
            raise UserError(f"{test_csv.parent}: no {TEST_FILE} (plain or .gz) for the ensemble's submission; "
                            f"put it there or name another with --data.predict_csv")
    submission = cli.config.submission.path
    if submission:
        check_writable(Path(submission))
    return log_root_of(cli.config.trainer)


def fit_one(cli_class: type[LightningCLI], args: list[str]) -> str:
    """The checkpoint that represents a `fit`: its best, else its last."""
    cli = cli_class(args=["fit", *args])
    if cli.trainer.received_sigterm:
        # Lightning records a SIGTERM until the end of its stage but acts on it only inside the loops:
        # one after the last epoch's check lets `fit` end normally, and the next member would start.
        raise SIGTERMException
    callback = cli.trainer.checkpoint_callback
    path = callback.best_model_path or callback.last_model_path if callback is not None else ""
    if not path:
        raise CheckpointError("ensemble: a member's run saved no checkpoint; keep checkpointing on")
    return path


def fit_in_parallel(members: list[Member], args: list[str], log_root: Path, parallel: int) -> list[str]:
    """Each member as its own `fit` process, `parallel` at a time, in run folders claimed up front.

    On GPUs member i sees only GPU i mod count; on the CPU each process gets an equal share of the
    cores as its thread count. A member's output goes to fit.log in its run folder.
    """
    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // parallel)
    runs = [_claim_run(log_root) for _ in members]
    waiting = list(zip(members, runs))
    running: list[tuple[Member, Path, subprocess.Popen]] = []
    slot = 0
    # cli.main makes SIGTERM raise SIGTERMException here (stop_on_signal.sigterm_raises), so that
    # `finally` stops the members too.
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                member, run = waiting.pop(0)
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
                slot += 1
                command = [sys.executable, "-m", "digit_recognizer", "fit", *member.args(args),
                           "--trainer.logger.init_args.version", run.name.removeprefix("version_")]
                with open(run / "fit.log", "w") as log, _signals_held():
                    running.append((member, run, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                                  env=env)))
                print(f"ensemble member ({member}): training in {run} (log: {run / 'fit.log'})")
            time.sleep(1)
            for entry in [e for e in running if e[2].poll() is not None]:
                running.remove(entry)
                member, run, process = entry
                if process.returncode != 0:
                    last = (run / "fit.log").read_text().strip().splitlines()[-1:] or ["no output"]
                    raise UserError(f"ensemble member ({member}) failed with exit status {process.returncode}: "
                                    f"{last[0]} (log: {run / 'fit.log'})")
    finally:
        with _signals_held():  # a second signal must not cut this short and leave a member running
            for _, _, process in running:  # a failed or interrupted ensemble stops the other members too
                process.terminate()  # each saves its last.ckpt to resume from
            for _, _, process in running:
                process.wait()
    return [str(member_checkpoint(run)) for run in runs]


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and Ctrl-C back until the block is done, then deliver them to the usual handlers.

    Popen forks, then waits until the child has exec'd: an exception raised meanwhile (SIGTERMException,
    KeyboardInterrupt) would leave the new member running, missing from the list `finally` stops.
    """
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def _claim_run(log_root: Path) -> Path:
    """A new, empty run folder under `log_root`, claimed as a RunLogger claims one."""
    logger = RunLogger(save_dir=str(log_root.parent), name=log_root.name)
    return Path(logger.log_dir)
