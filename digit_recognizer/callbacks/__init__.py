"""Callbacks that observe a run and write its outputs; none of them steers training."""

from digit_recognizer.callbacks.ensemble import InferenceEnsemble
from digit_recognizer.callbacks.inspection import ClassificationInspector, EpochTimer
from digit_recognizer.callbacks.report_writer import ReportWriter
from digit_recognizer.callbacks.submission import SubmissionWriter

__all__ = ["ClassificationInspector", "EpochTimer", "ReportWriter", "SubmissionWriter", "InferenceEnsemble"]
