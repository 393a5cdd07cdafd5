"""Callbacks that write a run's outputs and keep it resumable."""

from digit_recognizer.callbacks.averaging import SWAWeightAveraging
from digit_recognizer.callbacks.ensemble import InferenceEnsemble
from digit_recognizer.callbacks.inspection import ClassificationInspector, EpochTimer
from digit_recognizer.callbacks.interruption import InterruptCheckpoint
from digit_recognizer.callbacks.random_state import RandomStateCheckpoint
from digit_recognizer.callbacks.report_writer import ReportWriter
from digit_recognizer.callbacks.run_config import RunConfigSaver
from digit_recognizer.callbacks.submission import SubmissionWriter

__all__ = [
    "ClassificationInspector", "EpochTimer", "InferenceEnsemble", "InterruptCheckpoint", "RandomStateCheckpoint",
    "ReportWriter", "RunConfigSaver", "SubmissionWriter", "SWAWeightAveraging",
]
