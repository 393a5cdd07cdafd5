"""SWAWeightAveraging: stochastic weight averaging that validates and checkpoints the average.

Lightning's `StochasticWeightAveraging` callback puts the averaged weights into the network only
when training ends: every `val/acc` and every `last.ckpt` of the run are the last weights', not the
average's. Lightning's newer `WeightAveraging` validates and checkpoints the average, but from the
first step on. This one averages equally over the steps from `start_epoch` on (SWA, Izmailov et
al. 2018: the average of a run's late weights, where the learning rate is still high enough to
spread them) and, until then, leaves validation and checkpoints to the network's own weights.

For a network with BatchNorm, the average's running statistics are measured again on training
rows wherever the average is used (validation, checkpoints' `state_dict`, the network at the end):
Lightning averages them along with the weights, an approximation the SWA paper replaces with one
pass over the data. The averaged ones stay in the callback's state, so a resumed run goes on
averaging exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn

from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.errors import UserError
from digit_recognizer.names import NETWORK
from digit_recognizer.training.batch_norm import batch_norm_buffers, evenly_spaced, recompute_batch_norm



class SWAWeightAveraging(WeightAveraging):
    """The equal average of the weights after every optimizer step from `start_epoch` on.

    `start_epoch` is an epoch index (0 averages the whole run) or, below 1, a share of
    `max_epochs` (0.75: the last quarter, as in the SWA paper). Pair it with a schedule whose
    learning rate stays up at the end (e.g. OneCycleLR with `final_div_factor` below 1).
    `recompute_batch_norm`: measure the average's BatchNorm statistics on 5,000 (unaugmented)
    training rows spread over the set, one forward pass each time a new average is used (on
    deotte.yaml's three networks: +1.0 image each from one view, +2.7 with its shifts;
    docs/strong-network.md); False keeps Lightning's averaged statistics. Networks without
    BatchNorm are not affected either way.
    """

    def __init__(self, start_epoch: int | float = 0.75, recompute_batch_norm: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # no avg_fn: AveragedModel's default is the equal (running) mean
        self.start_epoch = start_epoch
        self.recompute_batch_norm = recompute_batch_norm
        self._first_epoch = 0
        self._trainer: Trainer | None = None
        self._batch_first_step = 0
        self._measured: tuple[int, dict[str, Tensor]] | None = None  # (steps averaged, statistics)
        self._averaged_statistics: dict[str, Tensor] = {}  # put aside while validation uses measured ones

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Checked here, not in __init__: LightningCLI would bury an error raised while it builds
        # the callback list under a traceback of its own.
        start = self.start_epoch
        if isinstance(start, bool) or start < 0 or (start >= 1 and start != int(start)):
            raise UserError(f"SWAWeightAveraging start_epoch must be an epoch index >= 0 or a share in (0, 1), "
                            f"not {start}")
        others = [type(c).__name__ for c in trainer.callbacks if isinstance(c, WeightAveraging) and c is not self]
        if others:  # each would swap its own average in for validation, over the other's
            raise UserError(f"SWAWeightAveraging and {others[0]} both average the weights; keep one of the two "
                            f"in trainer.callbacks")
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer
        if stage == "fit":
            self._first_epoch = int(start * trainer.max_epochs) if 0 < start < 1 else int(start)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """After every step of the epochs from the start on. Read from the trainer at each step, not
        decided in on_train_epoch_start: a run resumed mid-epoch skips that hook, and the rest of
        its epoch would be left out of the average."""
        return step_idx is not None and self._trainer is not None and self._trainer.current_epoch >= self._first_epoch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch_first_step = trainer.global_step

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        """With several optimizer steps a batch (data.steps_per_batch), `on_train_batch_end` sees
        only the batch's last step: the weights after each earlier step of the batch are averaged
        here, just before the next step changes them (with one step a batch this does nothing)."""
        if trainer.global_step > self._batch_first_step:
            super().on_train_batch_end(trainer, pl_module, None, None, 0)

    def _has_average(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def measured_statistics(self, trainer: Trainer) -> dict[str, Tensor]:
        """The average's BatchNorm buffers (keys inside the network) measured on the training rows;
        {} when not recomputed. Measured once per average: validation and the checkpoint of an
        epoch's end share one pass."""
        assert self._average_model is not None
        steps = int(self._average_model.n_averaged)
        if not self.recompute_batch_norm or trainer.datamodule is None:
            return {}
        if self._measured is None or self._measured[0] != steps:
            network = getattr(self._average_model.module, NETWORK)
            averaged = {name: buffer.clone() for name, buffer in batch_norm_buffers(network).items()}
            weight = next(network.parameters())  # the rows may live on the CPU (data.on_device false)
            rows = to_model_input(evenly_spaced(trainer.datamodule.train_set.images))
            recompute_batch_norm(network, rows.to(device=weight.device, dtype=weight.dtype))
            self._measured = (steps, {name: buffer.clone() for name, buffer in batch_norm_buffers(network).items()})
            _copy_into(network, averaged)  # the average itself keeps averaging its own statistics
        return self._measured[1]

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._has_average():
            measured = self.measured_statistics(trainer)
            super().on_validation_epoch_start(trainer, pl_module)
            network = getattr(pl_module, NETWORK)
            own = batch_norm_buffers(network)
            self._averaged_statistics = {name: own[name].clone() for name in measured}
            _copy_into(network, measured)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._has_average():
            _copy_into(getattr(pl_module, NETWORK), self._averaged_statistics)
            self._averaged_statistics = {}
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._has_average():
            measured = self.measured_statistics(trainer)
            super().on_train_end(trainer, pl_module)
            _copy_into(getattr(pl_module, NETWORK), measured)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """`state_dict` gets the measured statistics (what validate and predict load); the averaged
        ones go to `averaging_state`, which Lightning's on_load_checkpoint lays over `state_dict`
        when it rebuilds the average of a resumed run."""
        if not self._has_average():  # before the start the checkpoint holds the network's own weights
            return
        measured = self.measured_statistics(trainer)  # first: the pass changes the buffers it then restores
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        for name, buffer in measured.items():
            key = f"{NETWORK}.{name}"
            checkpoint["averaging_state"]["module." + key] = checkpoint["state_dict"][key]
            checkpoint["state_dict"][key] = buffer.clone()

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if "current_model_state" in checkpoint:  # saved once averaging had begun
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def _copy_into(network: nn.Module, buffers: dict[str, Tensor]) -> None:
    own = dict(network.named_buffers())
    for name, value in buffers.items():
        own[name].copy_(value)
