"""Every private Lightning symbol the package touches, touched in one place: after an upgrade this
test names the one that moved (digit_recognizer/lightning_internals.py)."""

from __future__ import annotations

from lightning.pytorch import Trainer
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.demos.boring_classes import BoringModel
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer import lightning_internals
from digit_recognizer.cli import DigitCLI


def test_every_fenced_private_symbol_is_still_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(BoringModel())
    optimizer = LightningOptimizer(trainer.optimizers[0])
    with SummaryWriter(tmp_path / "events") as writer:
        parser = DigitCLI(args=["--trainer.logger", "false"], run=False).parser
        lightning_internals.check_available(trainer, optimizer, writer, parser)
    assert lightning_internals.batches_that_stepped(trainer) == 1
    assert "--data.batch_size" in lightning_internals.option_strings(parser)
    steps: list[int] = []
    lightning_internals.count_optimizer_step(optimizer, lambda: steps.append(1))
    assert steps == [1]
