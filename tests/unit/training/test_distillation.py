"""Knowledge distillation: teachers' averaged probabilities as a second training target."""

import torch
import torch.nn.functional as F

from digit_recognizer.inference import AveragedNetworks
from digit_recognizer.errors import CheckpointError, UserError
from digit_recognizer.training import Distillation
from digit_recognizer.classifier import DigitClassifier

from helpers.data import tiny_datamodule, write_tiny_data
from helpers.errors import raises_one_line
from helpers.networks import Constant
from helpers.training import tiny_trainer


def test_the_training_loss_mixes_labels_and_the_teachers_mean_probability():
    distillation = Distillation(weight=0.25)
    model = DigitClassifier(label_smoothing=0.1, distillation=distillation)
    a, b = Constant([2.0, *[0.0] * 9]), Constant([0.0, 0.0, 3.0, *[0.0] * 7])
    distillation._teacher = (AveragedNetworks([a, b]),)
    images, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 2, 5, 9])
    logits = model(images)
    loss = model.training_loss(logits, images, labels)
    taught = (a(images).softmax(1) + b(images).softmax(1)) / 2
    expected = 0.75 * F.cross_entropy(logits, labels, label_smoothing=0.1) + 0.25 * F.cross_entropy(logits, taught)
    torch.testing.assert_close(loss, expected)


def test_a_student_trains_and_saves_only_its_own_network(teacher, tmp_path, monkeypatch):
    root, path = teacher
    student = DigitClassifier(distillation=Distillation([str(path)]))
    trainer = tiny_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    reads, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda file, *args, **kwargs: reads.append(file) or load(file, *args, **kwargs))
    trainer.fit(student, datamodule=tiny_datamodule(root / "data", tmp_path))
    monkeypatch.undo()
    assert reads.count(str(path)) == 1, "each teacher checkpoint is read once, for its split and its weights"
    teachers = student.distillation.network
    assert not teachers.training, "teachers predict in eval mode (no dropout) throughout"
    assert not any(p.requires_grad for p in teachers.parameters())
    saved = tmp_path / "student.ckpt"
    trainer.save_checkpoint(saved)
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["state_dict"].keys() == torch.load(path, weights_only=True)["state_dict"].keys(), \
        "the teachers stay out of the student's checkpoint"
    assert checkpoint["hyper_parameters"]["distillation"]["teachers"] == [str(path)]


def test_a_teacher_of_another_validation_split_is_refused(teacher, tmp_path):
    root, path = teacher
    trainer = tiny_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    with raises_one_line(UserError, match=r"teacher.ckpt: this teacher trained with val_fraction 0.1, split_seed 42"):
        trainer.fit(DigitClassifier(distillation=Distillation([str(path)])), datamodule=tiny_datamodule(root / "data", tmp_path, split_seed=7))


def test_a_student_on_every_row_may_use_any_teacher(teacher, tmp_path):
    root, path = teacher
    trainer = tiny_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    trainer.fit(DigitClassifier(distillation=Distillation([str(path)])), datamodule=tiny_datamodule(root / "data", tmp_path, val_fraction=0.0))
    assert trainer.state.finished


def test_a_missing_teacher_fails_before_training(tmp_path):
    data = write_tiny_data(tmp_path)
    trainer = tiny_trainer(tmp_path, max_epochs=1)
    with raises_one_line(CheckpointError, match="nope.ckpt: checkpoint file not found"):
        trainer.fit(DigitClassifier(distillation=Distillation([str(tmp_path / "nope.ckpt")])), datamodule=tiny_datamodule(data, tmp_path))
    assert trainer.global_step == 0


def test_the_distillation_weight_is_a_share():
    with raises_one_line(UserError, match="distillation.weight must be between 0 and 1, not 1.5"):
        Distillation(weight=1.5)


def test_a_teacher_that_does_not_record_its_split_is_refused(teacher, tmp_path):
    root, path = teacher
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["datamodule_hyper_parameters"]
    foreign = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, foreign)
    trainer = tiny_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    with raises_one_line(UserError, match="foreign.ckpt: the checkpoint does not record its validation split"):
        trainer.fit(DigitClassifier(distillation=Distillation([str(foreign)])), datamodule=tiny_datamodule(root / "data", tmp_path))
    assert trainer.global_step == 0
