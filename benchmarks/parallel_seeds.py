"""Wall time of `ensemble --seeds A B` with the seeds trained one after the other against two at a time.

Runs the same `ensemble` command twice, as a user would, each in a fresh folder: once sequentially
(one process; torch uses every core) and once with `--parallel 2` (two `fit` processes sharing the
cores, one thread each), both ending with the ensemble's submission. Prints each wall time, their
ratio against the goal of 0.6, and for each seed whether the two ways trained the same network
(bit-identical weights) and its recorded validation accuracy. A benchmark, not a test:

    python benchmarks/parallel_seeds.py --data-dir "$DIGIT_RECOGNIZER_DATA"
    python benchmarks/parallel_seeds.py --data-dir "$DIGIT_RECOGNIZER_DATA" --config cnn.yaml -- --trainer.max_epochs 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from digit_recognizer.runs import member_checkpoint


def run_ensemble(folder: Path, args: argparse.Namespace, parallel: int) -> float:
    """Seconds of one `ensemble` command in `folder`, from start to its submission."""
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "digit_recognizer", "ensemble", "--config", args.config,
               "--seeds", *map(str, args.seeds), "--parallel", str(parallel),
               "--data.data_dir", args.data_dir, "--data.download", "false",
               "--trainer.enable_progress_bar", "false", "--submission.path", str(folder / "submission.csv"),
               *args.fit_args]
    start = time.perf_counter()
    with open(folder / "ensemble.log", "w") as log:
        result = subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ensemble --parallel {parallel} failed with exit status {result.returncode}: see {folder / 'ensemble.log'}")
    return seconds


def members(folder: Path) -> list[dict]:
    """The members' checkpoints in seed order (run folders are claimed in that order either way)."""
    runs = sorted((folder / "lightning_logs").glob("version_*"), key=lambda run: int(run.name.split("_")[1]))
    return [torch.load(member_checkpoint(run), map_location="cpu", weights_only=True) for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("DIGIT_RECOGNIZER_DATA", "data"),
                        help="folder of train.csv and test.csv (default: $DIGIT_RECOGNIZER_DATA, else ./data)")
    parser.add_argument("--config", default="quick.yaml", help="the recipe (default quick.yaml)")
    parser.add_argument("--seeds", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--work-dir", help="where the two runs' folders go (default: a new temporary folder)")
    parser.add_argument("fit_args", nargs="*", help="after --: more arguments for every fit (default: one epoch)")
    args = parser.parse_args()
    args.fit_args = args.fit_args or ["--trainer.max_epochs", "1"]
    args.data_dir = str(Path(args.data_dir).resolve())
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="parallel-seeds-"))

    sequential = run_ensemble(work / "sequential", args, parallel=1)
    parallel = run_ensemble(work / "parallel", args, parallel=2)
    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__}; recipe {args.config} {' '.join(args.fit_args)}; "
          f"seeds {args.seeds[0]} {args.seeds[1]}; runs in {work}")
    print(f"one after the other: {sequential:.1f} s; two at a time (--parallel 2): {parallel:.1f} s")
    for seed, one, other in zip(args.seeds, members(work / "sequential"), members(work / "parallel")):
        same = all(torch.equal(tensor, other["state_dict"][name]) for name, tensor in one["state_dict"].items())
        accuracy = " ".join(f"{value:.4f}" for value in (one.get("val/acc_best"), other.get("val/acc_best")) if value is not None)
        print(f"seed {seed}: {'bit-identical weights' if same else 'weights differ'}; val/acc_best {accuracy or 'not recorded'}")
    ratio = parallel / sequential
    print(f"parallel/sequential wall time: {ratio:.2f} (goal: at most 0.6, {'met' if ratio <= 0.6 else 'not met'})")


if __name__ == "__main__":
    main()
