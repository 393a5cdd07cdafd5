"""Callbacks that observe a run and write its outputs: the submission, TensorBoard's views
(inspection, dashboard, epoch timer), the report's PNGs, and the averaging of inference."""

from digit_recognizer.callbacks.epoch_timer import EpochTimer
from digit_recognizer.callbacks.inference import InferenceAveraging
from digit_recognizer.callbacks.inspection import ClassificationInspector
from digit_recognizer.callbacks.report_writer import ReportWriter
from digit_recognizer.callbacks.submission import SubmissionWriter

__all__ = ["ClassificationInspector", "EpochTimer", "InferenceAveraging", "ReportWriter", "SubmissionWriter"]
