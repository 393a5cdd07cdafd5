"""Reading a checkpoint in one-line terms, older layouts included, and what its run recorded:
the network, the split it held out, the recipe's inference settings."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from digit_recognizer.errors import CheckpointError
from digit_recognizer.names import FORMAT_KEY, INFERENCE_STATE

# The layout of the package's checkpoints. 1: the network's dropouts and the teachers were the
# module's own arguments (before the network was injected); 2: `network` and `distillation`.
CHECKPOINT_FORMAT = 2
DEFAULT_NETWORK = "digit_recognizer.models.DigitCNN"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, or a one-line CheckpointError for a missing, truncated or foreign file."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or not a checkpoint file ({reason})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (it has no state_dict)")
    written = checkpoint.get(FORMAT_KEY, 1)
    if not isinstance(written, int) or written > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: written by a newer digit_recognizer (checkpoint format {written}, this "
                              f"version reads up to {CHECKPOINT_FORMAT}); upgrade the package to use it")
    return checkpoint


def migrate_hyperparameters(path: str | Path, hparams: dict[str, Any], known: Collection[str] | None = None) -> dict[str, Any]:
    """The model settings a checkpoint saved, in this version's terms, for LightningCLI to merge.

    Format 1 kept the network's dropouts and the distillation settings as the module's own
    arguments; they become `network` and `distillation`. With `known` (the module's argument
    names), anything else is a one-line error naming it (LightningCLI would print a usage message).
    """

    hparams = {key: value for key, value in hparams.items() if key not in ("_instantiator", "_class_path")}
    if not hparams:
        return {}
    if "network" not in hparams and ("conv_dropout" in hparams or "dense_dropout" in hparams):
        dropouts = {key: hparams.pop(key) for key in ("conv_dropout", "dense_dropout") if key in hparams}
        hparams["network"] = {"class_path": DEFAULT_NETWORK, "init_args": dropouts}
    if "teachers" in hparams or "distillation_weight" in hparams:
        teachers, weight = hparams.pop("teachers", None), hparams.pop("distillation_weight", 1.0)
        hparams["distillation"] = {"teachers": teachers, "weight": weight} if teachers else None
    unknown = sorted(set(hparams) - set(known)) if known is not None else []
    if unknown:
        raise CheckpointError(f"{path}: the checkpoint's model has settings this version does not know "
                              f"({', '.join(unknown)}); it was written by another version of the package")
    return hparams


def network_settings(path: str | Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """{"class_path": ..., "init_args": {...}} of the network a checkpoint holds (old formats too)."""
    hparams = migrate_hyperparameters(path, dict(checkpoint.get("hyper_parameters") or {}))
    network = hparams.get("network") or {"class_path": DEFAULT_NETWORK}
    return {"class_path": network["class_path"], "init_args": dict(network.get("init_args") or {})}


SPLIT_SETTINGS = ("val_fraction", "split_seed", "folds", "fold")  # older checkpoints: no folds (0)


def recorded_split(path: str | Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The validation split the checkpoint's run held out: the data module's SPLIT_SETTINGS.

    Scoring a network on rows it trained on would flatter it; the data module's saved
    hyperparameters tell which rows those were.
    """
    data = checkpoint.get("datamodule_hyper_parameters")
    if data is None:
        raise CheckpointError(f"{path}: the checkpoint does not record its validation split, so it may have "
                              f"trained on the rows being scored; use a checkpoint written by this package")
    return {key: data.get(key, 0) for key in SPLIT_SETTINGS}


def holds_rows_out(split: dict[str, Any]) -> bool:
    """Whether a recorded split validates on some rows (a validation fraction or a fold)."""
    return bool(split.get("val_fraction") or split.get("folds"))


def describe_split(split: dict[str, Any]) -> str:
    """'val_fraction 0.1, split_seed 42' or 'fold 2 of 5, split_seed 42': a split in the options' terms."""
    held_out = f"fold {split.get('fold', 0)} of {split['folds']}" if split.get("folds") else f"val_fraction {split.get('val_fraction')}"
    return f"{held_out}, split_seed {split.get('split_seed')}"


def recorded_data_dir(checkpoint: dict[str, Any]) -> str | None:
    """The data folder the checkpoint's run trained from (None: the usual lookup)."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("data_dir")


def recorded_inference(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The inference settings (shifts, checkpoints) the run's recipe chose, as InferenceAveraging
    saved them; None in checkpoints written before they were recorded."""
    state = (checkpoint.get("callbacks") or {}).get(INFERENCE_STATE)
    if not isinstance(state, dict):
        return None
    return {"shifts": [list(shift) for shift in state.get("shifts") or []],
            "checkpoints": list(state.get("checkpoints") or [])}
