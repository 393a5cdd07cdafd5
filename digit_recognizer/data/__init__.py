"""Data: Kaggle CSV -> validated uint8 tensors -> split -> loaders -> device batches."""

from digit_recognizer.data.datamodule import KaggleDigitsDataModule

__all__ = ["KaggleDigitsDataModule"]
