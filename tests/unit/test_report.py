"""`report`'s curves come from `fit`'s events, not from a later `validate`'s."""

from __future__ import annotations

import pytest
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.report import epoch_curves, read_events as read_run


def test_curves_come_from_fit_not_from_a_later_validate(tmp_path):
    """`validate` of a checkpoint logs val/acc at step 0; it must not replace epoch 1's value."""
    for stamp, scalars in ((1000, {"epoch": [(9, 0), (19, 1)], "train/loss": [(9, 0.5), (19, 0.3)],
                                   "val/loss": [(9, 0.4), (19, 0.2)]}),
                           (2000, {"epoch": [(0, 0)], "val/loss": [(0, 0.2)]})):
        with SummaryWriter(tmp_path / str(stamp)) as writer:
            for tag, points in scalars.items():
                for step, value in points:
                    writer.add_scalar(tag, value, step)
        (event_file,) = (tmp_path / str(stamp)).iterdir()
        event_file.rename(tmp_path / f"events.out.tfevents.{stamp}.host")
    curves = epoch_curves(read_run(tmp_path), "loss")
    assert curves == {"training": ([1, 2], [0.5, pytest.approx(0.3)]), "validation": ([1, 2], [pytest.approx(0.4), pytest.approx(0.2)])}
