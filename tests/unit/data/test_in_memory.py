"""The in-memory data path: a batch is one index operation."""

import torch
from torch.utils.data import DataLoader

from digit_recognizer.data.in_memory import DigitTensors, collate_batch


class NoPerSampleFetch(DigitTensors):
    def __getitem__(self, index: int):
        raise AssertionError("the DataLoader fetched a single sample")


def test_a_batch_is_one_index_operation():
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    dataset = NoPerSampleFetch(images, torch.arange(10))
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collate_batch))
    assert [len(labels) for _, labels, _ in batches] == [4, 4, 2]
    assert torch.equal(batches[1][0], images[4:8]) and batches[1][0].dtype == torch.uint8
    assert batches[1][2].tolist() == [4, 5, 6, 7], "each image's row in its CSV comes along"
