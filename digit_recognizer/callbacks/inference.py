"""InferenceAveraging: validate, test and predict with several checkpoints and shifted images."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import nn


from digit_recognizer.constants import IMAGE_SIZE
from digit_recognizer.errors import UserError
from digit_recognizer.inference import AveragedNetworks, Shift, describe_averaging, network_from_checkpoint
from digit_recognizer.names import EVALUATING_COMMANDS, INFERENCE_STATE, NETWORK

class InferenceAveraging(Callback):
    """Average class probabilities over `--ckpt_path`'s network, the extra checkpoints' networks,
    and shifted copies of every image, in `validate`, `test` and `predict` (`fit` is unchanged).

    The module's network is swapped for the average for the stage's duration, so val/acc,
    test/acc, the confusion matrix and the submission all score the ensemble.

    Args:
        checkpoints: More checkpoints (of any of the package's networks), averaged with `--ckpt_path`'s.
        shifts: Extra (dx, dy) pixel shifts averaged with the unshifted image (test-time
            augmentation), e.g. [[1,0],[-1,0],[0,1],[0,-1]]; empty: none.
    """

    def __init__(self, checkpoints: list[str] | None = None, shifts: list[Shift] | None = None) -> None:
        self.checkpoints = list(checkpoints or [])
        self.shifts = [tuple(shift) for shift in shifts or []]
        if any(abs(d) >= IMAGE_SIZE for shift in self.shifts for d in shift):
            raise UserError(f"inference.shifts must be smaller than the image ({IMAGE_SIZE} px): {self.shifts}")
        self.members: list[nn.Module] = []
        self.single: nn.Module | None = None  # the module's own network while the average stands in

    @property
    def active(self) -> bool:
        return bool(self.checkpoints or self.shifts)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Read the extra checkpoints early, so that a wrong one fails before any batch."""
        if trainer.state.fn not in EVALUATING_COMMANDS:
            return
        if self.active:
            # Each member is built from its own checkpoint's settings: an ensemble may mix networks.
            self.members = [network_from_checkpoint(path) for path in self.checkpoints]
        rank_zero_info(f"{trainer.state.fn.value}: {describe_averaging(self.shifts, 1 + len(self.checkpoints))}")

    @property
    def state_key(self) -> str:
        return INFERENCE_STATE

    def state_dict(self) -> dict[str, Any]:
        """The recipe's inference settings travel in the checkpoint: `predict`, `validate`, `test`
        and `export` of the run use them without the recipe (cli.DigitCLI reads them)."""
        return {"shifts": [list(shift) for shift in self.shifts], "checkpoints": list(self.checkpoints)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: a resumed `fit` keeps the settings it is given."""

    def _swap_in(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the checkpoint restore and model.eval(): the members join in eval mode on the device.
        if not self.active or self.single is not None:
            return
        self.single = getattr(pl_module, NETWORK)
        average = AveragedNetworks([self.single, *self.members], self.shifts)
        setattr(pl_module, NETWORK, average.to(pl_module.device).eval())

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not the validation epochs of `fit`
            self._swap_in(trainer, pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(trainer, pl_module)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(trainer, pl_module)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.single is not None:
            setattr(pl_module, NETWORK, self.single)
            self.single = None
        self.members = []
