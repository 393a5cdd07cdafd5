"""The reference recipe on a slice of the real competition data (skipped where it is absent)."""

from pathlib import Path

import pandas as pd
import pytest

from digit_recognizer.cli import DigitCLI

from helpers.paths import CNN_CONFIG, REAL_DATA


REAL_TRAIN = next((p for p in (REAL_DATA / "train.csv", REAL_DATA / "train.csv.gz") if p.is_file()), None) if REAL_DATA else None


@pytest.mark.skipif(REAL_TRAIN is None, reason="set DIGIT_RECOGNIZER_DATA to the folder of the competition's train.csv")
def test_three_epochs_on_2700_real_rows_reach_93_percent(tmp_path: Path, monkeypatch):
    """The reference recipe at batch 16. At batch 86, 2 epochs of 2,700 rows are only 64 RMSprop
    steps, still in the noisy start, where the last epoch's accuracy swings between 0.87 and 0.95
    with the seed and even the thread count. Two epochs of batch 16 (338 steps) were not enough
    either: 0.96-0.97 for seeds 1-4, but 0.92 for seed 42 on 2 threads (0.94 on one). Three
    epochs (507 steps) gave 0.96-0.97 for seeds 1-8 and 0.97-0.98 for seed 42."""
    data = tmp_path / "data"
    data.mkdir()
    pd.read_csv(REAL_TRAIN, nrows=3_000).to_csv(data / "train.csv", index=False)  # 2,700 train + 300 val
    monkeypatch.chdir(tmp_path)
    cli = DigitCLI(args=[
        "fit", "--config", str(CNN_CONFIG),
        "--data.data_dir", str(data), "--data.download", "false",
        "--trainer.max_epochs", "3", "--data.batch_size", "16",
        "--trainer.enable_model_summary", "false",
    ])
    assert len(cli.datamodule.train_set) == 2_700 and len(cli.datamodule.val_set) == 300
    accuracy = float(cli.trainer.callback_metrics["val/acc"])
    assert accuracy >= 0.93, f"validation accuracy {accuracy:.4f} after 3 epochs"
