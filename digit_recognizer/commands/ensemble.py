"""`ensemble --seeds 1 2 3 FIT_ARGS...`: one network per seed, trained one after another, then the
ensemble's submission: `predict` with every network's probabilities averaged.

Each seed is an ordinary `fit` run (its own lightning_logs/version_N with checkpoints and events),
so a seed that finished can be scored or resumed alone. Any other argument is passed to `fit` and
to `predict`, e.g. `--config best.yaml` or `--inference.shifts [[1,0],[-1,0]]`. With
`--distill`, one more network (the first seed's) learns from all of them (`model.distillation.teachers`), and
the submission is that single network's.
"""

from __future__ import annotations

import argparse
import json

from lightning.pytorch.cli import LightningCLI

from digit_recognizer.errors import CheckpointError


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m digit_recognizer ensemble",
        description="Train one network per seed, one after another, and write the ensemble's submission.",
        epilog="Other arguments go to fit and predict, e.g. --config best.yaml --submission.path ens.csv",
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="training seeds, one network each")
    parser.add_argument("--distill", action="store_true",
                        help="then train one more network taught by the others, and submit its predictions")
    return parser.parse_known_args(argv)


def main(argv: list[str], cli_class: type[LightningCLI]) -> None:
    """Fit each seed with `cli_class`, then predict with all of their checkpoints."""
    options, args = parse_args(argv)
    checkpoints = [fit_one(cli_class, args, seed) for seed in options.seeds]
    for seed, checkpoint in zip(options.seeds, checkpoints):
        print(f"ensemble member (seed {seed}): {checkpoint}")
    if options.distill:
        student = fit_one(cli_class, [*args, "--model.distillation.teachers", json.dumps(checkpoints)], options.seeds[0])
        print(f"distilled network (seed {options.seeds[0]}): {student}")
        cli_class(args=["predict", *args, "--ckpt_path", student])
        return
    cli_class(args=["predict", *args, "--ckpt_path", checkpoints[0],
                    "--inference.checkpoints", json.dumps(checkpoints[1:])])


def fit_one(cli_class: type[LightningCLI], args: list[str], seed: int) -> str:
    """The checkpoint that represents a `fit` with `seed`: its best, else its last."""
    cli = cli_class(args=["fit", *args, "--seed_everything", str(seed)])
    callback = cli.trainer.checkpoint_callback
    path = callback.best_model_path or callback.last_model_path if callback is not None else ""
    if not path:
        raise CheckpointError(f"ensemble: the run with seed {seed} saved no checkpoint; keep a ModelCheckpoint in trainer.callbacks")
    return path
