"""The Kaggle submission: ImageId from 1, one row per test image, written atomically (a full disk
keeps the previous one)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from digit_recognizer.callbacks.submission import write_submission, unique_by_index
from digit_recognizer.errors import UserError

from helpers.disk_full import assert_one_line, disk_full
from helpers.errors import raises_one_line


SUBMISSION = "ImageId,Label\n1,3\n"


def test_submission_on_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    path.write_text(SUBMISSION)
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with raises_one_line(UserError) as error:
        write_submission(path, torch.arange(3), torch.tensor([1, 2, 3]))
    assert_one_line(error, path)
    assert path.read_text() == SUBMISSION
    assert list(tmp_path.iterdir()) == [path]


def test_submission_format(tmp_path):
    path = tmp_path / "sub" / "submission.csv"
    path.parent.mkdir()
    write_submission(path, torch.arange(5), torch.tensor([7, 2, 1, 0, 4]))
    assert path.read_text().splitlines() == ["ImageId,Label", "1,7", "2,2", "3,1", "4,0", "5,4"]
    assert list(path.parent.iterdir()) == [path], "no temporary file may be left behind"


def test_padded_ddp_predictions_are_written_once_in_order():
    # Two processes, 5 images: DistributedSampler gives rank 0 [0, 2, 4] and rank 1 [1, 3, 0].
    indices = torch.tensor([0, 2, 4, 1, 3, 0])
    labels = torch.tensor([10, 12, 14, 11, 13, 10])
    unique_indices, unique_labels = unique_by_index(indices, labels)
    assert unique_indices.tolist() == [0, 1, 2, 3, 4]
    assert unique_labels.tolist() == [10, 11, 12, 13, 14]


def test_failed_write_keeps_the_old_submission(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    path.write_text("ImageId,Label\n1,3\n")

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        write_submission(path, torch.arange(3), torch.tensor([1, 2, 3]))
    assert path.read_text() == "ImageId,Label\n1,3\n"
    assert list(tmp_path.iterdir()) == [path]
