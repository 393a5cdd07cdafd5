"""SWAWeightAveraging: the equal average of the late weights, validated and checkpointed."""

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

from digit_recognizer.training import SWAWeightAveraging
from digit_recognizer.errors import UserError
from digit_recognizer.classifier import DigitClassifier

from conftest import raises_one_line, run_cli, tiny_datamodule, tiny_run_args, tiny_trainer
from test_bad_input import one_line_error


class RecordWeights(Callback):
    """The weights after every optimizer step, and the weights each validation epoch saw."""

    def __init__(self) -> None:
        self.after_step: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.validated: list[dict[str, torch.Tensor]] = []
        self.trained: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.after_step.append((trainer.current_epoch, _copy(pl_module)))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *args) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.validated.append(_copy(pl_module))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.trained.append(_copy(pl_module))


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def fit(tmp_path, tiny_data, start_epoch, max_epochs: int = 3, ckpt_path=None, extra=()):
    record = RecordWeights()
    last = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last")
    trainer = tiny_trainer(tmp_path, max_epochs=max_epochs, limit_val_batches=1,
                           callbacks=[last, SWAWeightAveraging(start_epoch=start_epoch), record, *extra])
    model = DigitClassifier()
    trainer.fit(model, tiny_datamodule(tiny_data, tmp_path, val_fraction=0.2), ckpt_path=ckpt_path)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return record, model, state


def test_the_checkpoint_and_the_last_validation_hold_the_mean_of_the_weights_since_the_start(tiny_data, tmp_path):
    record, model, state = fit(tmp_path, tiny_data, start_epoch=1)
    averaged_steps = [weights for epoch, weights in record.after_step if epoch >= 1]
    assert len(averaged_steps) == 6  # epochs 1 and 2, 3 steps each
    mean = {k: torch.stack([w[k] for w in averaged_steps]).mean(0) for k in averaged_steps[0]}
    assert state["averaging_state"]["n_averaged"] == 6
    assert _close(state["state_dict"], mean)
    assert _equal(state["current_model_state"], record.trained[-1])
    assert _equal(record.validated[-1], state["state_dict"])
    assert _equal(model.state_dict(), state["state_dict"]), "the network ends the run with the average in it"


def test_before_the_start_the_network_validates_with_its_own_weights(tiny_data, tmp_path):
    record, _, state = fit(tmp_path, tiny_data, start_epoch=2)
    assert _equal(record.validated[0], record.trained[0]) and _equal(record.validated[1], record.trained[1])
    assert not _equal(record.validated[2], record.trained[2]), "epoch 2 averages"
    assert state["averaging_state"]["n_averaged"] == 3


def test_a_checkpoint_from_before_the_start_is_the_network_itself(tiny_data, tmp_path):
    record, _, state = fit(tmp_path, tiny_data, start_epoch=5, max_epochs=1)
    assert "current_model_state" not in state and "averaging_state" not in state
    assert _equal(state["state_dict"], record.trained[0])


def test_a_share_of_the_run_starts_at_that_share_of_its_epochs(tiny_data, tmp_path):
    *_, state = fit(tmp_path, tiny_data, start_epoch=0.5, max_epochs=4)
    assert state["averaging_state"]["n_averaged"] == 6  # epochs 2 and 3


def test_a_resumed_run_goes_on_averaging(tiny_data, tmp_path):
    fit(tmp_path, tiny_data, start_epoch=1, max_epochs=2)
    *_, state = fit(tmp_path, tiny_data, start_epoch=1, max_epochs=3, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert state["averaging_state"]["n_averaged"] == 6  # 3 steps before the stop, 3 after


@pytest.mark.parametrize("start_epoch", [-1, 1.5, True])
def test_a_start_that_is_no_epoch_is_a_user_error(tiny_data, tmp_path, start_epoch):
    with raises_one_line(UserError, match="start_epoch must be an epoch index >= 0 or a share in"):
        fit(tmp_path, tiny_data, start_epoch=start_epoch)


def test_a_second_weight_average_is_a_user_error(tiny_data, tmp_path):
    with raises_one_line(UserError, match="SWAWeightAveraging and EMAWeightAveraging both average the weights"):
        fit(tmp_path, tiny_data, start_epoch=1, extra=[EMAWeightAveraging()])


def test_the_cli_takes_it_as_a_callback_and_refuses_a_bad_start_in_one_line(tiny_data, tmp_path):
    swa = ["--trainer.callbacks+=digit_recognizer.training.SWAWeightAveraging", "--trainer.callbacks.start_epoch"]
    run_cli("fit", *tiny_run_args(tiny_data, *swa, "0"), cwd=tmp_path)
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)
    assert state["averaging_state"]["n_averaged"] == 3
    result = run_cli("fit", *tiny_run_args(tiny_data, *swa, "1.5"), cwd=tmp_path, check=False)
    assert one_line_error(result.returncode, result.stderr) == (
        "error: SWAWeightAveraging start_epoch must be an epoch index >= 0 or a share in (0, 1), not 1.5")
