"""What changes how a run trains: weight averaging, distillation, run-length schedules."""

from digit_recognizer.training.averaging import SWAWeightAveraging
from digit_recognizer.training.distillation import Distillation

__all__ = ["Distillation", "SWAWeightAveraging"]
