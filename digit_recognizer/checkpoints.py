"""Checkpoint files that a kill cannot truncate, and that are checked before Lightning loads them.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives in
the system temp folder; when that is another filesystem the final "move" is a copy into place, so
a `kill -9` during it leaves a truncated checkpoint. AtomicCheckpointIO writes beside the target
and renames (one atomic step on any local filesystem).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from digit_recognizer.errors import CheckpointError
from digit_recognizer.files import atomic_file

# The layout of the package's checkpoints. 1: the network's dropouts and the teachers were the
# module's own arguments (before the network was injected); 2: `network` and `distillation`.
FORMAT_KEY = "digit_recognizer_format"
CHECKPOINT_FORMAT = 2
DEFAULT_NETWORK = "digit_recognizer.models.DigitCNN"


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are all-or-nothing: the old file or the complete new one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:  # remote storage: fsspec's own handling
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_file(path) as file:  # a full disk: one UserError line, the previous last.ckpt kept
            torch.save(checkpoint, file)


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


def migrate_hyperparameters(path: str | Path, hparams: dict[str, Any]) -> dict[str, Any]:
    """The model settings a checkpoint saved, in this version's terms, for LightningCLI to merge.

    Format 1 kept the network's dropouts and the distillation settings as the module's own
    arguments; they become `network` and `distillation`. Anything else this version does not
    know is a one-line error naming it (LightningCLI would print a usage message instead).
    """
    from digit_recognizer.classifier import DigitClassifier  # the module imports this one

    hparams = {key: value for key, value in hparams.items() if key not in ("_instantiator", "_class_path")}
    if not hparams:
        return {}
    if "network" not in hparams and ("conv_dropout" in hparams or "dense_dropout" in hparams):
        dropouts = {key: hparams.pop(key) for key in ("conv_dropout", "dense_dropout") if key in hparams}
        hparams["network"] = {"class_path": DEFAULT_NETWORK, "init_args": dropouts}
    if "teachers" in hparams or "distillation_weight" in hparams:
        teachers, weight = hparams.pop("teachers", None), hparams.pop("distillation_weight", 1.0)
        hparams["distillation"] = {"teachers": teachers, "weight": weight} if teachers else None
    known = set(inspect.signature(DigitClassifier.__init__).parameters) - {"self"}
    unknown = sorted(set(hparams) - known)
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


def recorded_inference(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The inference settings (shifts, checkpoints) the run's recipe chose, as InferenceAveraging
    saved them; None in checkpoints written before they were recorded."""
    state = (checkpoint.get("callbacks") or {}).get(INFERENCE_STATE)
    if not isinstance(state, dict):
        return None
    return {"shifts": [list(shift) for shift in state.get("shifts") or []],
            "checkpoints": list(state.get("checkpoints") or [])}


INFERENCE_STATE = "InferenceAveraging"  # its key among a checkpoint's callback states


def check_checkpoint(path: str | Path, model: nn.Module, checkpoint: dict[str, Any] | None = None) -> None:
    """Raise a one-line CheckpointError unless `path` is a readable checkpoint of `model`'s architecture.

    Lightning would otherwise fail deep inside loading with a long traceback (a truncated zip
    archive, or a state_dict mismatch listing every weight). `checkpoint`: the file's contents
    when the caller has already read them.
    """
    state = (checkpoint if checkpoint is not None else read_checkpoint(path))["state_dict"]
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        example = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise CheckpointError(
            f"{path}: a checkpoint of a different model ({len(missing)} weights missing, "
            f"{len(unexpected)} unexpected, e.g. {example})"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: a checkpoint of a different architecture ('{name}' has shape "
                f"{tuple(state[name].shape)}, this model's is {tuple(tensor.shape)})"
            )


def holds_rows_out(split: dict[str, Any]) -> bool:
    """Whether a recorded split validates on some rows (a validation fraction or a fold)."""
    return bool(split.get("val_fraction") or split.get("folds"))


def describe_split(split: dict[str, Any]) -> str:
    """'val_fraction 0.1, split_seed 42' or 'fold 2 of 5, split_seed 42': a split in the options' terms."""
    held_out = f"fold {split.get('fold', 0)} of {split['folds']}" if split.get("folds") else f"val_fraction {split.get('val_fraction')}"
    return f"{held_out}, split_seed {split.get('split_seed')}"


RESUMED_DATA_SETTINGS = ("batch_size", "steps_per_batch", *SPLIT_SETTINGS)


def check_resume(path: str | Path, checkpoint: dict[str, Any], model: Any, datamodule: Any) -> None:
    """A run resumes with the settings it trained with: one line, before any batch, otherwise.

    PyTorch loads another optimizer's saved state without a word (its settings then stand in for
    the new optimizer's), and another split or batch size would silently change what the epochs
    hold; LightningCLI checks neither.
    """
    saved = checkpoint.get("datamodule_hyper_parameters") or {}
    for key in RESUMED_DATA_SETTINGS:
        if key in saved and getattr(datamodule, "hparams", {}).get(key) != saved[key]:
            raise CheckpointError(f"{path}: the run trained with data.{key} {saved[key]}, this resume asks for "
                                  f"{datamodule.hparams.get(key)}; resume with the run's settings or start a new run")
    groups = [state.get("param_groups", [{}])[0] for state in checkpoint.get("optimizer_states", [])]
    factory = getattr(model, "optimizer_factory", None)
    if not groups or factory is None:
        return
    fresh = factory([torch.nn.Parameter(torch.zeros(1))])
    missing = sorted(set(fresh.param_groups[0]) - set(groups[0]) - {"params"})
    if missing:
        raise CheckpointError(f"{path}: the run trained with another optimizer (its state has no '{missing[0]}' "
                              f"for {type(fresh).__name__}); resume with the run's optimizer or start a new run")
