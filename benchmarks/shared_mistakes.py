"""How many trained networks share each of their validation mistakes.

Scores every checkpoint on the validation split, then counts, for each image that any network
gets wrong, how many networks get it wrong, and scores the average of all their probabilities.
Mistakes that every network shares are the floor that no single network of the family is likely
to go below; the README's Results section quotes this script's output:

    python benchmarks/shared_mistakes.py --data-dir ../shared/data RUN1/checkpoints/last.ckpt RUN2/...

All networks must be the package's DigitCNN, and the split must be the one they were judged on
(`--val-fraction` and `--split-seed` as in their runs).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import torch
from torch import Tensor

from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.ensemble import load_network
from digit_recognizer.errors import UserError
from digit_recognizer.models import DigitCNN


def shared_mistake_counts(predictions: Tensor, labels: Tensor) -> Counter[int]:
    """(networks, N) predicted classes and (N,) labels -> {k: images wrong in exactly k networks}."""
    wrong_in = (predictions != labels).sum(0)
    return Counter(wrong_in[wrong_in > 0].tolist())


@torch.no_grad()
def class_probabilities(checkpoint: str, images: Tensor, batch_size: int = 1000) -> Tensor:
    network = load_network(checkpoint, DigitCNN()).eval()
    return torch.cat([network(batch).softmax(-1) for batch in images.split(batch_size)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="last.ckpt or best-*.ckpt files of DigitCNN runs")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=42)
    args = parser.parse_args()

    try:
        data = KaggleDigitsDataModule(args.data_dir, val_fraction=args.val_fraction, split_seed=args.split_seed,
                                      download=False)
        data.setup("validate")
        images, labels = to_model_input(data.val_set.images), data.val_set.labels
        probabilities = []
        for checkpoint in args.checkpoints:
            probabilities.append(class_probabilities(checkpoint, images))
            print(f"{checkpoint}: {int((probabilities[-1].argmax(-1) != labels).sum())} wrong of {len(labels)}")
    except UserError as exc:  # a missing CSV or checkpoint, another network: one line, as the CLI does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    stacked = torch.stack(probabilities)
    networks = len(stacked)
    counts = shared_mistake_counts(stacked.argmax(-1), labels)
    print(f"{networks} networks; {sum(counts.values())} images wrong in at least one")
    for k in sorted(counts, reverse=True):
        print(f"  wrong in {k:>3} of {networks}: {counts[k]} images")
    majority = sum(n for k, n in counts.items() if 2 * k > networks)
    print(f"wrong in every network: {counts.get(networks, 0)}; in more than half: {majority}")
    print(f"average of all {networks} networks' probabilities: "
          f"{int((stacked.mean(0).argmax(-1) != labels).sum())} wrong of {len(labels)}")


if __name__ == "__main__":
    main()
