"""A recipe's validation accuracy over its seeds, one network at a time, against issue #6's goal.

Give it one checkpoint per training seed of a recipe. Each network is scored on the validation
split its run held out (read from the checkpoint; all must share it), as `validate` scores it:
from one view of each image, and averaged over the image and its test-time shifts (by default
the four one-pixel shifts of configs/best.yaml). It prints every network's correct count, their
mean and sample standard deviation, the ensemble of all of them, and whether the mean reaches
the goal (99.60%):

    python benchmarks/seed_accuracy.py --data-dir ../shared/data RUN_42/checkpoints/last.ckpt RUN_43/... RUN_44/...
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from digit_recognizer.checkpoints import read_checkpoint, recorded_split
from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.ensemble import AveragedNetworks, Shift, load_network
from digit_recognizer.errors import UserError
from digit_recognizer.models import DigitCNN

ONE_PIXEL = [(1, 0), (-1, 0), (0, 1), (0, -1)]


@torch.no_grad()
def class_probabilities(network: nn.Module, images: Tensor, shifts: Sequence[Shift], batch_size: int = 1000) -> Tensor:
    """(N, 10) probabilities of one network, averaged over the image and its shifts as `validate` does."""
    views = AveragedNetworks([network], shifts)
    return torch.cat([views(batch).exp() for batch in images.split(batch_size)])


def correct_count(probabilities: Tensor, labels: Tensor) -> int:
    return int((probabilities.argmax(-1) == labels).sum())


def summary(correct: Sequence[int], total: int, goal: float) -> str:
    """'4,186 / 4,184 / 4,182 correct: 0.99619 ± 0.00048, goal met' for one scoring of the seeds."""
    accuracies = [c / total for c in correct]
    spread = f" ± {statistics.stdev(accuracies):.5f}" if len(correct) > 1 else ""
    mean = statistics.fmean(accuracies)
    short = goal * total - statistics.fmean(correct)
    verdict = "goal met" if mean >= goal else f"goal not met ({short:.1f} images short on average)"
    return f"{' / '.join(f'{c:,}' for c in correct)} correct: {mean:.5f}{spread}, {verdict}"


def load(paths: Sequence[str], data_dir: str) -> tuple[list[nn.Module], Tensor, Tensor, dict]:
    """The networks and their common validation split's images and labels."""
    checkpoints = {path: read_checkpoint(path) for path in paths}
    splits = {path: recorded_split(path, contents) for path, contents in checkpoints.items()}
    first, split = paths[0], splits[paths[0]]
    for path, other in splits.items():
        if other != split:
            raise UserError(f"{path}: held out val_fraction {other['val_fraction']}, split_seed {other['split_seed']}, "
                            f"but {first} held out val_fraction {split['val_fraction']}, split_seed "
                            f"{split['split_seed']}; score the networks of one split together")
    if not split["val_fraction"]:
        raise UserError(f"{first}: trained on every row (val_fraction 0), so no rows are held out to score it on")
    data = KaggleDigitsDataModule(data_dir, download=False, **split)
    data.setup("validate")
    networks = [load_network(path, DigitCNN(), checkpoint=contents).eval() for path, contents in checkpoints.items()]
    return networks, to_model_input(data.val_set.images), data.val_set.labels, split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="one last.ckpt (or best-*.ckpt) per seed")
    parser.add_argument("--data-dir", default="data", help="folder with train.csv(.gz)")
    parser.add_argument("--shifts", type=json.loads, default=ONE_PIXEL,
                        help="test-time shifts as JSON [[dx, dy], ...] (default: the four one-pixel shifts)")
    parser.add_argument("--goal", type=float, default=0.996, help="mean accuracy to reach (default 0.996)")
    args = parser.parse_args(argv)
    try:
        networks, images, labels, split = load(args.checkpoints, args.data_dir)
    except UserError as exc:  # a missing CSV or checkpoint, another network or split: one line, as the CLI does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    total = len(labels)
    print(f"validation split: val_fraction {split['val_fraction']}, split_seed {split['split_seed']}, {total:,} images")
    shifts: list[Shift] = [tuple(shift) for shift in args.shifts]
    for name, views in (("one view", []), (f"with shifts {json.dumps(args.shifts)}", shifts)):
        # Each network runs once; the ensemble is the mean of their probabilities, as in AveragedNetworks.
        probabilities = [class_probabilities(network, images, views) for network in networks]
        line = f"{name}: {summary([correct_count(p, labels) for p in probabilities], total, args.goal)}"
        if len(networks) > 1:
            ensemble = correct_count(torch.stack(probabilities).mean(0), labels)
            line += f"; ensemble of all {len(networks)}: {ensemble:,} correct"
        print(line)


if __name__ == "__main__":
    main()
