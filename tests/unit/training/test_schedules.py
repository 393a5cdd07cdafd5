"""A one-cycle schedule that cannot fit the run is one line."""

from functools import partial

import pytest
import torch

from digit_recognizer.errors import UserError
from digit_recognizer.classifier import DigitClassifier

from helpers.data import tiny_datamodule
from helpers.errors import raises_one_line
from helpers.training import tiny_trainer


def one_cycle(total_steps: int | None, pct_start: float = 0.3):
    """OneCycleLR as LightningCLI hands it to the model: a partial with every argument named."""
    return partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=total_steps, epochs=None,
                   pct_start=pct_start)


@pytest.mark.parametrize("total_steps, pct_start, settings, message", [
    (2, 0.3, {"max_epochs": 1}, "total_steps is 2, shorter than this run's 3 steps"),
    (None, 0.3, {"max_epochs": -1}, "needs a run of known length"),
    (None, 1 / 3, {"max_epochs": 1}, "cannot split 3 steps into its phases with pct_start 0.333"),
])
def test_one_cycle_that_cannot_fit_the_run_is_a_user_error(tiny_data, tmp_path, total_steps, pct_start, settings, message):
    model = DigitClassifier(scheduler=one_cycle(total_steps, pct_start), scheduler_interval="step")
    with raises_one_line(UserError, match=message):
        tiny_trainer(tmp_path, **settings).fit(model, tiny_datamodule(tiny_data, tmp_path))
