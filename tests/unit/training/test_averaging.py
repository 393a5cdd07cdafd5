"""SWAWeightAveraging: the equal average of the late weights, validated and checkpointed, with
BatchNorm statistics measured on the training rows."""

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint, EMAWeightAveraging
from lightning.pytorch.utilities.exceptions import SIGTERMException

from digit_recognizer.resume import InterruptCheckpoint
from digit_recognizer.training import SWAWeightAveraging
from digit_recognizer.errors import UserError
from digit_recognizer.classifier import DigitClassifier
from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.models import DeotteCNN
from digit_recognizer.training.batch_norm import batch_norm_buffers, evenly_spaced, recompute_batch_norm

from helpers.data import tiny_datamodule
from helpers.errors import raises_one_line
from helpers.training import tiny_trainer


class StopInSecondValidation(Callback):
    """SIGTERM's graceful stop, raised inside a validation epoch, with a copy of the weights validated."""

    def on_validation_batch_start(self, trainer, pl_module, *args) -> None:
        if trainer.current_epoch == 1:
            # SWAWeightAveraging has swapped the averaged weights in for validation
            self.validated = {k: v.clone() for k, v in pl_module.state_dict().items()}
            raise SIGTERMException()


def test_stop_during_validation_saves_averaged_and_trained_weights_the_right_way_round(tiny_data, tmp_path):
    stop = StopInSecondValidation()
    last = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last")
    trainer = tiny_trainer(tmp_path, max_epochs=3, limit_val_batches=1, callbacks=[last, SWAWeightAveraging(start_epoch=1), InterruptCheckpoint(), stop])
    model = DigitClassifier()
    with pytest.raises(SIGTERMException):
        trainer.fit(model, tiny_datamodule(tiny_data, tmp_path))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert all(torch.equal(state["state_dict"][k], v) for k, v in stop.validated.items()), "the averaged weights"
    assert all(torch.equal(state["current_model_state"][k], v) for k, v in model.state_dict().items()), "trained"
    assert state["averaging_state"]["n_averaged"] == 3  # every step of epoch 1, where averaging starts


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


# -- BatchNorm: the average's statistics measured on the training rows ----------------------------

def fit_batch_norm_network(tmp_path, tiny_data, **swa_settings):
    record = RecordWeights()
    last = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last")
    swa = SWAWeightAveraging(start_epoch=1, **swa_settings)
    trainer = tiny_trainer(tmp_path, max_epochs=3, limit_val_batches=1, callbacks=[last, swa, record])
    model = DigitClassifier(network=DeotteCNN(dropout=0.4, width=4))
    data = tiny_datamodule(tiny_data, tmp_path, val_fraction=0.2)
    trainer.fit(model, data)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return record, model, data, state


def test_a_batch_norm_average_is_validated_and_saved_with_statistics_measured_on_the_training_rows(tiny_data, tmp_path):
    record, model, data, state = fit_batch_norm_network(tmp_path, tiny_data)
    averaged_steps = [weights for epoch, weights in record.after_step if epoch >= 1]
    mean = {k: torch.stack([w[k].float() for w in averaged_steps]).mean(0) for k in averaged_steps[0]}
    statistics = {f"network.{k}" for k in batch_norm_buffers(model.network)}
    weights = {k: v for k, v in state["state_dict"].items() if k not in statistics}
    assert _close(weights, {k: mean[k] for k in weights}), "the weights are still the average"
    # Lightning's averaged statistics are kept for a resumed run to go on averaging ...
    kept = {k: state["averaging_state"]["module." + k] for k in statistics if not k.endswith("num_batches_tracked")}
    assert _close(kept, {k: mean[k] for k in kept})
    # ... while validate, predict and the network at the end use the ones of the averaged weights
    expected = DeotteCNN(dropout=0.4, width=4)
    expected.load_state_dict({k.removeprefix("network."): v for k, v in state["state_dict"].items()})
    recompute_batch_norm(expected, to_model_input(evenly_spaced(data.train_set.images)))
    measured = {f"network.{k}": v for k, v in batch_norm_buffers(expected).items()}
    assert _close({k: state["state_dict"][k].float() for k in measured}, {k: v.float() for k, v in measured.items()})
    assert not _close({k: state["state_dict"][k] for k in kept}, kept), "the statistics were measured again"
    assert _equal(record.validated[-1], state["state_dict"])
    assert _equal(model.state_dict(), state["state_dict"])
    assert _equal(record.trained[-1], state["current_model_state"]), "training went on with its own statistics"


def test_recompute_batch_norm_false_keeps_the_averaged_statistics(tiny_data, tmp_path):
    record, _, _, state = fit_batch_norm_network(tmp_path, tiny_data, recompute_batch_norm=False)
    averaged_steps = [weights for epoch, weights in record.after_step if epoch >= 1]
    mean = {k: torch.stack([w[k].float() for w in averaged_steps]).mean(0) for k in averaged_steps[0]}
    running = [k for k in state["state_dict"] if k.endswith(("running_mean", "running_var"))]
    assert running and _close({k: state["state_dict"][k] for k in running}, {k: mean[k] for k in running})


def test_recompute_batch_norm_measures_the_statistics_without_drawing_random_numbers():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Dropout(0.5))
    images = torch.rand(50, 1, 28, 28)
    before = torch.get_rng_state()
    assert recompute_batch_norm(network, images, batch_size=10)
    assert torch.equal(torch.get_rng_state(), before), "dropout must stay off"
    features = network[0](images).detach()
    norm = network[1]
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3)), atol=1e-5)
    per_batch = torch.stack([f.var((0, 2, 3)) for f in features.split(10)])  # unbiased per batch, as BN keeps
    assert torch.allclose(norm.running_var, per_batch.mean(0), atol=1e-5)
    assert network.training and norm.momentum == 0.1, "the network's mode and momentum are left as they were"


def test_recompute_batch_norm_leaves_a_network_without_it_alone():
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3))
    before = _copy(network)
    assert not recompute_batch_norm(network, torch.rand(4, 1, 28, 28))
    assert _equal(_copy(network), before)


def test_the_statistics_sample_spreads_over_the_whole_set():
    rows = torch.arange(37_800)
    sample = evenly_spaced(rows)
    assert len(sample) == 5000 and sample[0] == 0 and sample[-1] == 37_799 and len(set(sample.tolist())) == 5000
    assert torch.equal(evenly_spaced(rows[:300]), rows[:300])
