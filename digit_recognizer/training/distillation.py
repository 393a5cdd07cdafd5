"""Knowledge distillation: the averaged probabilities of trained networks as a second target.

Each augmented training batch also goes through the teachers (e.g. an ensemble's seeds, in eval
mode, without gradients); the student's loss mixes cross-entropy against the labels with
cross-entropy against the teachers' mean probability (Hinton et al. 2015, at temperature 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from digit_recognizer.checkpoints import describe_split, holds_rows_out, read_checkpoint, recorded_split
from digit_recognizer.errors import UserError
from digit_recognizer.inference import AveragedNetworks, load_network


@dataclass
class Distillation:
    """Teachers for `DigitClassifier`: `--model.distillation.teachers [A.ckpt, B.ckpt]`.

    Args:
        teachers: Checkpoints of trained networks of the student's kind. They must not have
            trained on this run's validation rows (checked against their recorded split).
        weight: The teachers' share of the training loss; the labels' share is the rest.
    """

    teachers: list[str] = field(default_factory=list)
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise UserError(f"model.distillation.weight must be between 0 and 1, not {self.weight}")
        # In a tuple, not a submodule of the student: the teachers stay out of its state_dict,
        # checkpoint, optimizer and weight average.
        self._teacher: tuple[AveragedNetworks, ...] = ()

    def load_teachers(self, like: nn.Module, datamodule: Any) -> None:
        """Read every teacher once, check its split, load it in eval mode; fails before any batch."""
        if self._teacher or not self.teachers:
            return
        checkpoints = {path: read_checkpoint(path) for path in self.teachers}
        _check_split(checkpoints, getattr(datamodule, "hparams", {}))
        networks = [load_network(path, like=like, checkpoint=read) for path, read in checkpoints.items()]
        self._teacher = (AveragedNetworks(networks).eval().requires_grad_(False),)

    def to(self, device: torch.device) -> None:
        if self._teacher:
            self._teacher[0].to(device)

    @property
    def network(self) -> AveragedNetworks | None:
        return self._teacher[0] if self._teacher else None

    def blend(self, label_loss: Tensor, logits: Tensor, images: Tensor) -> Tensor:
        """(1 - weight) x the labels' loss + weight x cross-entropy against the teachers' mean."""
        if not self._teacher:
            return label_loss
        with torch.no_grad():
            taught = self._teacher[0](images).exp()
        return (1 - self.weight) * label_loss + self.weight * F.cross_entropy(logits, taught)


def _check_split(checkpoints: dict[str, dict[str, Any]], student: Any) -> None:
    """Teachers that trained on this run's validation rows would inflate its val/acc."""
    if not holds_rows_out(student):
        return
    for path, contents in checkpoints.items():
        split = recorded_split(path, contents)
        if split != {key: student[key] for key in split}:
            raise UserError(
                f"{path}: this teacher trained with {describe_split(split)}, so it saw rows this run "
                f"validates on ({describe_split(student)}); use teachers of the same split"
            )
