"""StepGroup: one Lightning training batch that carries K optimizer steps' batches (data.steps_per_batch).

Lightning pays a fixed cost of Python per training batch (its loops, every callback's hooks, the
progress bar, the logger connector): about 1-2 ms, which on a GPU is more than the step itself
(docs/performance.md). With `steps_per_batch` K the training loader hands over K batches' images at
once and the module trains them as K optimizer steps, so that cost is paid once per K steps.

The batches are prepared (scaled, augmented, mixed) one at a time, just before their step, so that
the random numbers are drawn in the same order as with K = 1 (augmentation, then dropout, batch
after batch) and the run trains exactly as it would one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor

Prepare = Callable[[list[Tensor]], list[Tensor]]


class StepGroup(list):
    """[images, labels, rows] of K consecutive batches of `batch_size` (the last may hold fewer).

    A plain list of the group's raw tensors to everything that reads a batch (Lightning's batch-size
    guess, the epoch timer's image count); `steps()` yields the prepared batch of each optimizer step.
    """

    def __init__(self, tensors: list[Tensor], batch_size: int, prepare: Prepare) -> None:
        super().__init__(tensors)
        self.batch_size = batch_size
        self.prepare = prepare

    @property
    def num_steps(self) -> int:
        return -(-len(self[0]) // self.batch_size)

    def steps(self) -> Iterator[list[Tensor]]:
        """Each step's batch, prepared when it is reached (not before: see the module's docstring)."""
        for start in range(0, len(self[0]), self.batch_size):
            yield self.prepare([tensor[start : start + self.batch_size] for tensor in self])
