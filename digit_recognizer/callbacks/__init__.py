"""Callbacks that observe a run and write its outputs; none of them steers training."""

from digit_recognizer.callbacks.submission import SubmissionWriter

__all__ = ["SubmissionWriter"]
