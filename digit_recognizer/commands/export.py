"""`export --ckpt_path best|last|FILE --format onnx|torchscript`: the trained network as one file.

The file holds what `predict` would run: the checkpoint's network, with the recipe's test-time
shifts and extra checkpoints (`inference.*`) folded in, returning class probabilities for any
batch of 1x28x28 images. A model card (JSON) beside it says what goes in and out and where the
network came from. Other arguments are the recipe's, as for `predict` (e.g. `--config best.yaml`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningCLI

from digit_recognizer.checkpoints import network_settings, read_checkpoint, recorded_data_dir, recorded_inference
from digit_recognizer.constants import TRAIN_FILE
from digit_recognizer.errors import UserError
from digit_recognizer.data.sources import existing_csv, resolve_data_dir
from digit_recognizer.export import FORMATS, data_checksum, export_onnx, export_torchscript, write_model_card
from digit_recognizer.inference import AveragedNetworks, describe_averaging, network_from_checkpoint
from digit_recognizer.names import BEST_ACCURACY
from digit_recognizer.runs import find_checkpoint, log_root_of, run_dir_of

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
RECORDED_ACCURACY = (BEST_ACCURACY,)  # DigitClassifier.on_save_checkpoint


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m digit_recognizer export", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint file, or 'best' or 'last' of the newest run")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--output", help="the file to write (default: model.onnx / model.pt in the checkpoint's run folder)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    return parser.parse_known_args(argv)


def main(argv: list[str], cli_class: type[LightningCLI]) -> None:
    options, recipe_args = parse_args(argv)
    cli = cli_class(args=recipe_args, run=False)  # the recipe's inference settings and data folder
    checkpoint_path = _resolve(options.ckpt_path, cli)
    contents = read_checkpoint(checkpoint_path)
    recorded = recorded_inference(contents)
    if recorded:  # the run's own views and networks, unless the recipe or the command line names others
        cli = cli_class(args=recipe_args, run=False, inference_defaults=recorded)
    inference = cli.config.inference
    network = network_from_checkpoint(checkpoint_path, contents)
    members = [network_from_checkpoint(path) for path in inference.checkpoints or []]
    shifts = [tuple(shift) for shift in inference.shifts or []]
    print(f"export: {describe_averaging(shifts, 1 + len(members))}")
    if members or shifts:
        network = AveragedNetworks([network, *members], shifts).eval()
    output = Path(options.output) if options.output else run_dir_of(checkpoint_path) / f"model{SUFFIXES[options.format]}"
    if output.is_dir():
        raise UserError(f"{output}: is a folder; --output takes a file name")
    if options.format == "onnx":
        export_onnx(network, output, options.opset)
    else:
        export_torchscript(network, output)
    card = write_model_card(
        output.with_name(output.name + ".json"),
        recipe=_recipe(contents, checkpoint_path, members=inference.checkpoints or [], shifts=shifts),
        val_accuracy=recorded_accuracy(contents),
        data_checksum=_train_checksum(contents, cli.config.data.data_dir),
        source_checkpoint=str(checkpoint_path),
        fmt=options.format,
    )
    print(f"Exported {checkpoint_path} to {output} ({options.format}); model card: {card}")


def _resolve(ckpt_path: str, cli: LightningCLI) -> Path:
    if ckpt_path in ("best", "last"):
        return find_checkpoint(log_root_of(cli.config.trainer), ckpt_path)
    return Path(ckpt_path)


def recorded_accuracy(checkpoint: dict[str, Any]) -> float | None:
    """The best validation accuracy the run recorded, if it validated."""
    for key in RECORDED_ACCURACY:
        if key in checkpoint:
            return float(checkpoint[key])
    for key, state in checkpoint.get("callbacks", {}).items():  # older checkpoints: the monitored ModelCheckpoint
        if key.startswith("ModelCheckpoint") and state.get("monitor") == "val/acc" and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def _recipe(checkpoint: dict[str, Any], path: Path, members: list[str], shifts: list) -> dict[str, Any]:
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    data = {k: v for k, v in (checkpoint.get("datamodule_hyper_parameters") or {}).items() if not k.startswith("_")}
    return {"network": network_settings(path, checkpoint), "model": hparams, "data": data,
            "epochs_trained": checkpoint.get("epoch", 0) + 1, "inference": {"checkpoints": members, "shifts": shifts}}


def _train_checksum(checkpoint: dict[str, Any], data_dir: str | None) -> str | None:
    """sha256 of the train.csv the run trained on, when it is still there (null in the card otherwise).

    The folder is the one the checkpoint records, else the recipe's; nothing is downloaded.
    """
    folder, _ = resolve_data_dir(recorded_data_dir(checkpoint) or data_dir)
    path = existing_csv(folder / TRAIN_FILE)
    return data_checksum(path) if path is not None else None
