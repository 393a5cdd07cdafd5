"""A recipe's validation accuracy over its seeds, one network at a time, against a goal.

Give it one checkpoint per training seed of a recipe. Each network is scored on the validation
split its run held out (read from the checkpoints; all must share it), as `validate` scores it:
from one view of each image, and averaged over the image and its test-time shifts (by default the
four one-pixel shifts of best.yaml). It prints every network's correct count, their mean and sample
standard deviation, the ensemble of all of them, and whether the mean (and, with --ensemble-goal,
the ensemble) reaches its goal. The networks may come from different recipes (a mixed ensemble):

    python benchmarks/seed_accuracy.py --data-dir "$DIGIT_RECOGNIZER_DATA" RUN_42/checkpoints/last.ckpt RUN_43/...
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from digit_recognizer.checkpoints import describe_split
from digit_recognizer.errors import UserError
from digit_recognizer.evaluation import ONE_PIXEL, class_probabilities, correct_count, load_networks, seeds_summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="one last.ckpt (or best-*.ckpt) per seed")
    parser.add_argument("--data-dir", help="folder with train.csv(.gz) (default: $DIGIT_RECOGNIZER_DATA, else ./data)")
    parser.add_argument("--shifts", type=json.loads, default=ONE_PIXEL,
                        help="test-time shifts as JSON [[dx, dy], ...] (default: the four one-pixel shifts)")
    parser.add_argument("--goal", type=float, default=0.996, help="mean accuracy to reach (default 0.996)")
    parser.add_argument("--ensemble-goal", type=float, help="accuracy the ensemble of all networks is to reach")
    args = parser.parse_args(argv)
    try:
        networks, split = load_networks(args.checkpoints, args.data_dir)
    except UserError as exc:  # a missing CSV or checkpoint, another split: one line, as the CLI does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    total = len(split.labels)
    print(f"validation split: {describe_split(split.split)}, {total:,} images")
    shifts = [tuple(shift) for shift in args.shifts]
    for name, views in (("one view", []), (f"with shifts {json.dumps(args.shifts)}", shifts)):
        # Each network runs once; the ensemble is the mean of their probabilities, as in AveragedNetworks.
        probabilities = [class_probabilities(network, split.images, views) for network in networks]
        line = f"{name}: {seeds_summary([correct_count(p, split.labels) for p in probabilities], total, args.goal)}"
        if len(networks) > 1:
            ensemble = correct_count(torch.stack(probabilities).mean(0), split.labels)
            line += f"; ensemble of all {len(networks)}: {ensemble:,} correct ({ensemble / total:.5f})"
            if args.ensemble_goal is not None:
                line += ", goal met" if ensemble >= args.ensemble_goal * total else ", goal not met"
        print(line)


if __name__ == "__main__":
    main()
