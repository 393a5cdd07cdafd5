"""Score SWA checkpoints of a BatchNorm network with each choice of BatchNorm statistics.

For every checkpoint (a run with SWAWeightAveraging and a validation split), the same averaged
weights are scored on the held-out rows with: the statistics the checkpoint holds; Lightning's
averaged ones (from `averaging_state`, when the run measured its own); ones measured on 5,000
training rows (what `recompute_batch_norm` does), on all training rows and on all of them augmented
once; and the run's last weights without the average. One view and with the one-pixel shifts:

    python benchmarks/batch_norm_statistics.py --data-dir "$DIGIT_RECOGNIZER_DATA" RUN/checkpoints/last.ckpt ...
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
from torch import nn

from digit_recognizer.checkpoints import read_checkpoint, recorded_split
from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.errors import UserError
from digit_recognizer.evaluation import ONE_PIXEL, class_probabilities, correct_count
from digit_recognizer.inference import load_network, network_from_checkpoint
from digit_recognizer.training.batch_norm import batch_norm_buffers, evenly_spaced, recompute_batch_norm



def measured(network: nn.Module, images: torch.Tensor) -> nn.Module:
    other = copy.deepcopy(network)
    recompute_batch_norm(other, images)
    return other.eval()


def variants(path: str, data_dir: str | None) -> tuple[dict[str, nn.Module], torch.Tensor, torch.Tensor]:
    checkpoint = read_checkpoint(path)
    if "current_model_state" not in checkpoint:
        raise UserError(f"{path}: no weight average in this checkpoint (SWA had not begun, or the run had none)")
    data = KaggleDigitsDataModule(data_dir, download=False, **recorded_split(path, checkpoint))
    data.setup("fit")
    if data.val_set is None:
        raise UserError(f"{path}: trained on every row (val_fraction 0), so no rows are held out to score it on")
    saved = network_from_checkpoint(path, checkpoint)
    if not batch_norm_buffers(saved):
        raise UserError(f"{path}: the network has no BatchNorm layer")
    train = to_model_input(data.train_set.images)
    torch.manual_seed(0)  # one fixed augmentation of every training row
    augmented = torch.cat([data.augmenter(batch) for batch in train.split(1000)])
    found = {"as saved": saved}
    averaged = {k.removeprefix("module."): v for k, v in checkpoint["averaging_state"].items() if k.startswith("module.")}
    if averaged:  # the run measured its own statistics and kept Lightning's here
        state = {"state_dict": {**checkpoint["state_dict"], **averaged}}
        found["Lightning's averaged statistics"] = load_network(path, like=saved, checkpoint=state).eval()
    found["measured on 5,000 training rows"] = measured(saved, evenly_spaced(train))
    found["measured on all training rows"] = measured(saved, train)
    found["measured on all training rows, augmented"] = measured(saved, augmented)
    last = {"state_dict": checkpoint["current_model_state"]}
    found["the last weights, no average"] = load_network(path, like=saved, checkpoint=last).eval()
    return found, to_model_input(data.val_set.images), data.val_set.labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="last.ckpt of SWA runs with a validation split")
    parser.add_argument("--data-dir", help="folder with train.csv(.gz) (default: $DIGIT_RECOGNIZER_DATA, else ./data)")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            networks, images, labels = variants(path, args.data_dir)
        except UserError as exc:  # one line, as the CLI does
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        for name, network in networks.items():
            one = correct_count(class_probabilities(network, images), labels)
            shifted = correct_count(class_probabilities(network, images, ONE_PIXEL), labels)
            print(f"{path}: {name}: {one:,} / {shifted:,} correct of {len(labels):,} (one view / with the one-pixel shifts)")


if __name__ == "__main__":
    main()
