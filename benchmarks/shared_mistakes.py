"""How many trained networks share each of their validation mistakes.

Scores every checkpoint on the validation split its run held out (all must share it), then counts,
for each image that any network gets wrong, how many networks get it wrong, and scores the average
of all their probabilities. Mistakes that every network shares are the floor that no single
network of the family is likely to go below (docs/experiments.md quotes this script's output):

    python benchmarks/shared_mistakes.py --data-dir "$DIGIT_RECOGNIZER_DATA" RUN1/checkpoints/last.ckpt RUN2/...
"""

from __future__ import annotations

import argparse
import sys

import torch

from digit_recognizer.errors import UserError
from digit_recognizer.evaluation import class_probabilities, load_networks, shared_mistake_counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="last.ckpt or best-*.ckpt files of runs of one split")
    parser.add_argument("--data-dir", help="folder with train.csv(.gz) (default: $DIGIT_RECOGNIZER_DATA, else ./data)")
    args = parser.parse_args(argv)
    try:
        networks, split = load_networks(args.checkpoints, args.data_dir)
    except UserError as exc:  # a missing CSV or checkpoint, another split: one line, as the CLI does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    labels = split.labels
    probabilities = []
    for path, network in zip(args.checkpoints, networks):
        probabilities.append(class_probabilities(network, split.images))
        print(f"{path}: {int((probabilities[-1].argmax(-1) != labels).sum())} wrong of {len(labels)}")
    stacked = torch.stack(probabilities)
    count = len(stacked)
    counts = shared_mistake_counts(stacked.argmax(-1), labels)
    print(f"{count} networks; {sum(counts.values())} images wrong in at least one")
    for k in sorted(counts, reverse=True):
        print(f"  wrong in {k:>3} of {count}: {counts[k]} images")
    majority = sum(n for k, n in counts.items() if 2 * k > count)
    print(f"wrong in every network: {counts.get(count, 0)}; in more than half: {majority}")
    print(f"average of all {count} networks' probabilities: "
          f"{int((stacked.mean(0).argmax(-1) != labels).sum())} wrong of {len(labels)}")


if __name__ == "__main__":
    main()
