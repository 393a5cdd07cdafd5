"""Checks made before Lightning loads a checkpoint: the right architecture, and a resume with the
settings the run trained with; each a one-line CheckpointError instead of a deep traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from digit_recognizer.checkpoints.reading import SPLIT_SETTINGS, read_checkpoint
from digit_recognizer.errors import CheckpointError


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
