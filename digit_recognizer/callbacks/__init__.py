"""Callbacks that observe a run and write its outputs, and keep it resumable."""

from digit_recognizer.callbacks.inference import InferenceAveraging
from digit_recognizer.callbacks.epoch_timer import EpochTimer
from digit_recognizer.callbacks.inspection import ClassificationInspector
from digit_recognizer.callbacks.interruption import InterruptCheckpoint
from digit_recognizer.callbacks.random_state import RandomStateCheckpoint
from digit_recognizer.callbacks.report_writer import ReportWriter
from digit_recognizer.callbacks.run_config import RunConfigSaver
from digit_recognizer.callbacks.scheduler_step import EpochEndSchedulerStep
from digit_recognizer.callbacks.submission import SubmissionWriter

__all__ = [
    "ClassificationInspector", "EpochEndSchedulerStep", "EpochTimer", "InferenceAveraging", "InterruptCheckpoint", "RandomStateCheckpoint",
    "ReportWriter", "RunConfigSaver", "SubmissionWriter",
]
