"""DigitTensors: a split held as whole tensors, so that a batch is one index operation.

A `TensorDataset` makes the DataLoader fetch every sample in Python and stack them again; with
`__getitems__` the DataLoader hands over the batch's indices at once, and the batch is cut out of
the uint8 tensor in one `index_select`. On a GPU the tensors can live there for the whole run.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class DigitTensors(Dataset):
    """uint8 images (N, 28, 28) and, when labelled, int64 labels (N,) and each image's row in its
    CSV (N,), on one device: a batch is [images, labels, rows] (or [images] unlabelled), so that
    a mistake can be looked up in the file."""

    def __init__(self, images: Tensor, labels: Tensor | None = None, rows: Tensor | None = None) -> None:
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if labels is None:
            self.tensors: tuple[Tensor, ...] = (images,)
        else:
            self.tensors = (images, labels, rows if rows is not None else torch.arange(len(images), device=images.device))

    @property
    def images(self) -> Tensor:
        return self.tensors[0]

    @property
    def labels(self) -> Tensor | None:
        return self.tensors[1] if len(self.tensors) > 1 else None

    @property
    def rows(self) -> Tensor | None:
        """0-based data rows of the CSV (line = row + 2, the header being line 1)."""
        return self.tensors[2] if len(self.tensors) > 2 else None

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> list[Tensor]:
        index = torch.as_tensor(indices)
        if self.device.type == "cuda":  # from pinned memory the copy does not wait for the GPU's queue
            index = index.pin_memory()
        index = index.to(self.device, non_blocking=True)
        return [t.index_select(0, index) for t in self.tensors]

    def to(self, device: torch.device | str) -> DigitTensors:
        return DigitTensors(*(t.to(device) for t in self.tensors))

    def subset(self, index: Tensor) -> DigitTensors:
        return DigitTensors(*(t[index] for t in self.tensors))


def collate_batch(batch: list[Tensor]) -> list[Tensor]:
    """`__getitems__` already returns the batch: nothing to stack."""
    return batch
