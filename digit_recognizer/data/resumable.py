"""ResumableLoader: a shuffled training DataLoader that a run stopped in mid-epoch resumes exactly.

Without help, a run resumed in mid-epoch draws a fresh permutation for the rest of that epoch
(Lightning warns that "your dataloader is not resumable"), so it trains on other images than the
uninterrupted run would have. This loader remembers the shuffle generator's state from when the
epoch's permutation was drawn; the DataModule saves it in checkpoints with the number of batches
the run had trained on, and the resumed run's loader draws the same permutation and skips them.

The DataModule carries this state, not the loader through Lightning's own stateful-loader
support: a one-cycle schedule asks for the run's length in `configure_optimizers`, which makes
Lightning build and start the loader before it restores the loops' and loaders' states.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """DataLoader(shuffle=True, generator=...) that can start in mid-epoch.

    Args:
        resume: {"generator": the shuffle generator's state at the epoch's start, "batches_done":
            how many of its batches the run trained on}, for the first epoch it iterates; None: start afresh.
    """

    def __init__(self, *args: Any, resume: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = resume
        self.epoch_start: torch.Tensor | None = None

    def __iter__(self) -> Iterator[Any]:
        skip = 0
        if self.resume is not None and self.generator is not None:
            self.generator.set_state(self.resume["generator"])
            skip = self.resume["batches_done"]
        self.resume = None
        self.epoch_start = self.generator.get_state() if self.generator is not None else None
        iterator = super().__iter__()
        for _ in range(skip):  # one index operation each (DigitTensors): cheap
            next(iterator)
        return iterator
