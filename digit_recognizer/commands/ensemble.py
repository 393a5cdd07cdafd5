"""`ensemble [--seeds 1 2 3] [--recipes cnn.yaml deotte.yaml] [--folds K] [--parallel N] FIT_ARGS...`:
several networks, then the submission of their averaged probabilities.

Each member (every recipe with every seed, and with `--folds K` every fold) is an ordinary `fit`
run with its own lightning_logs/version_N, so one that finished can be scored or resumed alone.
The ensemble's own folder, lightning_logs/ensemble_N/, records which runs are its members
(ensemble.json) and receives the submission; running the same command again after a stop
continues that ensemble: finished members are not trained again, stopped ones resume from their
last.ckpt. Members that differ (network, augmentation, seed, training rows) make mistakes that
differ, which is what averaging gains from. Any other argument goes to every `fit` and to the
final `predict`, e.g. `--data.val_fraction 0.1` or `--inference.shifts [[1,0],[-1,0]]`. The
submission uses the first recipe's inference settings.

`--folds K` is K-fold cross-validation: fold i of a stratified split of train.csv validates member
i, the other folds train it. Every row is then predicted once by the one network that never saw it
(out of fold), and the ensemble's folder gets oof.csv, their accuracy over all rows (oof.json) and
its figures (evaluation.write_out_of_fold).

`--parallel N` trains N members at once in separate processes: one per GPU when there are GPUs
(data-parallel DDP does not speed a batch of 86 up; a member per device does), else N CPU processes
sharing the cores. With `--distill`, one more network (the first member's recipe and seed) learns
from all of them (`model.distillation.teachers`), and the submission is that single network's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.callbacks.submission import check_writable
from digit_recognizer.constants import TEST_FILE
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.evaluation import write_out_of_fold
from digit_recognizer.names import LAST, SUBMISSION_FILE
from digit_recognizer.runs import RUN_PREFIX, EnsembleFolder, log_root_of, member_checkpoint
from digit_recognizer.signals import signals_held

_SPLIT_OPTIONS = ("--data.val_fraction", "--data.folds", "--data.fold")


@dataclass(frozen=True)
class Member:
    recipe: str | None  # None: the recipe of the common arguments (or the default)
    seed: int | None  # None: the recipe's seed_everything
    fold: int | None = None  # with --folds K: the fold that validates this member
    folds: int = 0

    def args(self, common: list[str]) -> list[str]:
        recipe = ["--config", self.recipe] if self.recipe else []
        seed = ["--seed_everything", str(self.seed)] if self.seed is not None else []
        fold = ["--data.val_fraction", "0", "--data.folds", str(self.folds), "--data.fold", str(self.fold)] \
            if self.fold is not None else []
        return [*recipe, *common, *seed, *fold]

    def __str__(self) -> str:
        parts = [f"fold {self.fold}"] if self.fold is not None else []
        parts += [f"seed {self.seed}"] if self.seed is not None else []
        return ", ".join(parts + ([self.recipe] if self.recipe else [])) or "the recipe's seed"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m digit_recognizer ensemble",
        description="Train several networks and write the submission of their averaged probabilities.",
        epilog="Other arguments go to fit and predict, e.g. --config best.yaml --submission.path ens.csv",
    )
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="training seeds, one network each (default with --folds: the recipe's seed)")
    parser.add_argument("--recipes", nargs="+",
                        help="recipes to train, each with every seed (e.g. best.yaml deotte.yaml); default: --config's")
    parser.add_argument("--folds", type=int,
                        help="K-fold cross-validation: one network per fold, their out-of-fold accuracy on every "
                             "row of train.csv, and the submission of all of them")
    parser.add_argument("--parallel", type=int, default=1,
                        help="members trained at once: one per GPU, else CPU processes sharing the cores (default 1)")
    parser.add_argument("--distill", action="store_true",
                        help="then train one more network taught by the others, and submit its predictions")
    options, rest = parser.parse_known_args(argv)
    if options.parallel < 1:
        parser.error(f"--parallel must be at least 1, not {options.parallel}")
    if options.recipes and any(arg in ("--config", "-c") or arg.startswith("--config=") for arg in rest):
        parser.error("give the recipes with --recipes or one --config, not both")
    if options.folds is None and not options.seeds:
        parser.error("give --seeds (one network each) or --folds K")
    if options.folds is not None:
        if options.folds < 2:
            parser.error(f"--folds must be at least 2, not {options.folds}")
        given = next((arg for arg in rest for option in _SPLIT_OPTIONS if arg.split("=")[0] == option), None)
        if given:
            parser.error(f"--folds chooses every member's validation rows: leave out {given.split('=')[0]}")
        if options.distill:
            parser.error("--distill needs one split for every teacher; it does not go with --folds")
    return options, rest


def members_of(options: argparse.Namespace) -> list[Member]:
    folds = options.folds or 0
    return [Member(recipe, seed, fold, folds)
            for recipe in options.recipes or [None]
            for seed in options.seeds or [None]
            for fold in (range(folds) if folds else [None])]


def main(argv: list[str], cli_class: type[LightningCLI]) -> None:
    """Fit every member with `cli_class`, then predict with all of their checkpoints."""
    options, args = parse_args(argv)
    members = members_of(options)
    first = members[0]
    log_root, shifts = check_before_training(cli_class, first.args(args))
    ensemble = EnsembleFolder.continue_or_start(log_root, _identity(argv), [str(m) for m in members])
    unfinished = [(member, run) for member, run in zip(members, ensemble.runs) if not ensemble.finished(run)]
    if len(unfinished) < len(members):
        print(f"ensemble: continuing {ensemble.folder} ({len(members) - len(unfinished)} of {len(members)} members "
              f"finished)")
    if options.parallel > 1 and len(unfinished) > 1:
        fit_in_parallel(unfinished, args, options.parallel, ensemble.mark_finished)
    else:
        for member, run in unfinished:
            fit_one(cli_class, [*member.args(args), *resume_args(run)])
            ensemble.mark_finished(run)
    checkpoints = [str(member_checkpoint(run)) for run in ensemble.runs]
    for member, checkpoint in zip(members, checkpoints):
        print(f"ensemble member ({member}): {checkpoint}")
    if options.folds:
        print(write_out_of_fold(checkpoints, ensemble.folder, shifts))  # each from its run's recorded data folder
    submission = [] if _gives(args, "--submission.path") else ["--submission.path", str(ensemble.folder / SUBMISSION_FILE)]
    if options.distill:
        student = fit_one(cli_class, [*first.args(args), "--model.distillation.teachers", json.dumps(checkpoints)])
        print(f"distilled network ({first}): {student}")
        cli_class(args=["predict", *first.args(args), *submission, "--ckpt_path", student])
    else:
        cli_class(args=["predict", *first.args(args), *submission, "--ckpt_path", checkpoints[0],
                        "--inference.checkpoints", json.dumps(checkpoints[1:])])
    ensemble.mark_complete()


def check_before_training(cli_class: type[LightningCLI], args: list[str]) -> tuple[Path, list]:
    """What would fail after hours of training fails now: the split, the test images and the
    submission's path.

    Returns the folder of the run folders and the recipe's inference shifts.
    """
    cli = cli_class(args=args, run=False)
    data = cli.datamodule
    if data.hparams.folds:  # more folds than a digit has rows: one line now, not in the first member
        data.setup("fit")
    if not data.hparams.predict_csv and not data.hparams.images:
        test_csv = data.csv_path(TEST_FILE)
        if not test_csv.is_file():
            raise UserError(f"{test_csv.parent}: no {TEST_FILE} (plain or .gz) for the ensemble's submission; "
                            f"put it there or name another with --data.predict_csv")
    submission = cli.config.submission.path
    if submission:
        check_writable(Path(submission))
    return log_root_of(cli.config.trainer), [tuple(shift) for shift in cli.config.inference.shifts or []]


def _identity(argv: list[str]) -> list[str]:
    """The command's arguments without --parallel: the same ensemble, however many train at once."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--parallel":
            skip = True
        elif not arg.startswith("--parallel="):
            kept.append(arg)
    return kept


def _gives(args: list[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in args)


def resume_args(run: Path) -> list[str]:
    """`fit` arguments that train a member in its claimed run folder: resumed from its last.ckpt if it has one."""
    last = run / "checkpoints" / LAST
    if last.is_file():
        return ["--ckpt_path", str(last)]
    return ["--trainer.logger.init_args.version", run.name.removeprefix(RUN_PREFIX)]


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


def fit_in_parallel(members: list[tuple[Member, Path]], args: list[str], parallel: int,
                    on_finished: Callable[[Path], None]) -> None:
    """Each member as its own `fit` process in its run folder, `parallel` at a time.

    On GPUs member i sees only GPU i mod count; on the CPU each process gets an equal share of the
    cores as its thread count. A member's output goes to fit.log in its run folder.
    """
    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // parallel)
    waiting = list(members)
    running: list[tuple[Member, Path, subprocess.Popen]] = []
    slot = 0
    # cli.main makes SIGTERM raise SIGTERMException here (signals.sigterm_raises), so that
    # `finally` stops the members too.
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                member, run = waiting.pop(0)
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
                slot += 1
                command = [sys.executable, "-m", "digit_recognizer", "fit", *member.args(args), *resume_args(run)]
                with open(run / "fit.log", "a") as log, signals_held():
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
                on_finished(run)
    finally:
        with signals_held():  # a second signal must not cut this short and leave a member running
            for _, _, process in running:  # a failed or interrupted ensemble stops the other members too
                process.terminate()  # each saves its last.ckpt to resume from
            for _, _, process in running:
                process.wait()
