"""DigitClassifier: the reference optimizer and schedules, mixed labels, channels-last and compile."""

from functools import partial

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelSummary

from digit_recognizer.classifier import DigitClassifier

from helpers.data import tiny_datamodule
from helpers.training import tiny_trainer


def test_reference_optimizer_and_scheduler():
    module = DigitClassifier()
    config = module.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"]) == (1e-3, 0.9, 1e-8)
    scheduler = config["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (scheduler.mode, scheduler.factor, scheduler.threshold_mode, scheduler.min_lrs[0]) == ("max", 0.5, "abs", 1e-5)
    assert config["lr_scheduler"]["monitor"] == "val/acc"


def test_plateau_halves_after_three_flat_epochs_like_keras():
    module = DigitClassifier()
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for accuracy in [0.90, 0.90, 0.90, 0.90]:  # one best epoch, then 3 without improvement
        scheduler.step(accuracy)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [1e-3, 1e-3, 1e-3, 5e-4]


def test_no_scheduler_when_null():
    module = DigitClassifier(scheduler=None)
    assert isinstance(module.configure_optimizers(), torch.optim.RMSprop)


def test_one_cycle_keeps_a_configured_length():
    schedule = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=100)
    config = DigitClassifier(scheduler=schedule, scheduler_interval="step").configure_optimizers()
    assert config["lr_scheduler"]["scheduler"].total_steps == 100
    assert config["lr_scheduler"]["interval"] == "step"


def test_training_takes_mixed_labels(tiny_data, tmp_path):
    """With MixUp/CutMix on, the loss learns from per-class shares and train/acc scores the larger one."""
    label_shapes, images_scored = [], []

    class LabelSpy(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            label_shapes.append(tuple(batch[1].shape))
            accuracy = pl_module.train_accuracy
            images_scored.append(int((accuracy.tp + accuracy.fn).sum()))  # one label per image

    # ModelSummary sends example_input_array, images without labels, through the batch hooks.
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[LabelSpy(), ModelSummary()])
    trainer.fit(DigitClassifier(label_smoothing=0.1), tiny_datamodule(tiny_data, tmp_path, mixup_alpha=0.2, cutmix_alpha=1.0))
    assert label_shapes == [(32, 10)] * 3 and images_scored == [32, 64, 96]
    loss, accuracy = trainer.callback_metrics["train/loss"], trainer.callback_metrics["train/acc"]
    assert torch.isfinite(loss) and 0 <= accuracy <= 1


def test_channels_last_changes_the_layout_not_the_function():
    plain = DigitClassifier().eval()
    nhwc = DigitClassifier(channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    weight = nhwc.network.features[0][2].weight  # 32 -> 32 channels (with one, both layouts coincide)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    images = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(nhwc(images), plain(images))


def test_compile_keeps_the_checkpoint_keys():
    """The real torch.compile (it compiles lazily, at the first call): wrapping the network as
    `torch.compile(network)` would prefix every key with `_orig_mod.` and fail this test."""
    compiled = DigitClassifier(compile="reduce-overhead")
    assert compiled.network._compiled_call_impl is not None, "the network is compiled in place"
    assert compiled.state_dict().keys() == DigitClassifier().state_dict().keys()


def test_one_step_a_batch_is_plain_automatic_optimization():
    """The multi-step machinery is opt-in: with one step per batch none of it is there."""
    plain = DigitClassifier()
    assert plain.automatic_optimization and plain.multi_step is None
    grouped = DigitClassifier(steps_per_batch=4)
    assert not grouped.automatic_optimization and grouped.multi_step.steps_per_batch == 4
