"""Callbacks that tests add to a CLI subprocess (`--trainer.callbacks+=helpers.probes.X`, with tests/
on its PYTHONPATH: helpers.cli.TESTS_ON_PATH as the subprocess's `env`) to look inside a run or to
make something fail at a chosen point."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import torch
from lightning.pytorch import Callback


class MismatchedCollective(Callback):
    """In `setup`, process 0 broadcasts while the others wait at a barrier: collectives that never
    match, as a hook that runs on process 0 alone and calls a collective would leave them."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            trainer.strategy.broadcast("x")
        else:
            trainer.strategy.barrier()


def _last_checkpoint(trainer) -> Path:
    """last.ckpt of the run: where the every-epoch ModelCheckpoint (filename "last") writes it."""
    writer = next(c for c in trainer.checkpoint_callbacks if c.filename == "last")
    return Path(writer.dirpath) / "last.ckpt"


class LastCheckpointEpochs(Callback):
    """Writes to the JSON file `record` the epoch that last.ckpt holds at the start of each training
    epoch and at the end of `fit` (null while there is none)."""

    def __init__(self, record: str) -> None:
        self.record, self.seen = record, []

    def _look(self, trainer) -> None:
        path = _last_checkpoint(trainer)
        self.seen.append(torch.load(path, map_location="cpu", weights_only=True)["epoch"] if path.is_file() else None)
        Path(self.record).write_text(json.dumps(self.seen))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._look(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._look(trainer)


class DiskFullFromEpoch(Callback):
    """From the start of training epoch `epoch` on, saving any checkpoint (.ckpt) fails as on a full
    disk: torch.save writes part of it, then raises OSError ENOSPC."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch, self.patched = epoch, False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.patched or trainer.current_epoch < self.epoch:
            return
        self.patched, original = True, torch.save

        def save(obj, file, *args, **kwargs):
            name = str(getattr(file, "name", file))
            if ".ckpt" not in name:
                return original(obj, file, *args, **kwargs)
            if hasattr(file, "write"):
                file.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        torch.save = save


class RecordAutocast(Callback):
    """Writes to the JSON file `record`, at the end of training, what the network saw in its
    training forward passes: the dtypes of its outputs and whether CPU autocast was on, in what dtype."""

    def __init__(self, record: str) -> None:
        self.record, self.seen = record, set()

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(module, inputs, output) -> None:
            if module.training:
                self.seen.add((str(output.dtype), torch.is_autocast_enabled("cpu"), str(torch.get_autocast_dtype("cpu"))))
        self.handle = pl_module.network.register_forward_hook(hook)

    def on_train_end(self, trainer, pl_module) -> None:
        self.handle.remove()
        keys = ("logits", "autocast", "autocast_dtype")
        Path(self.record).write_text(json.dumps([dict(zip(keys, seen)) for seen in sorted(self.seen)]))
