"""What exact resume needs beyond Lightning, each callback naming the upstream behaviour that makes
it necessary: the random states (RandomStateCheckpoint), the scheduler step Lightning skips on
restart (EpochEndSchedulerStep), a checkpoint on Ctrl-C or SIGTERM (InterruptCheckpoint). The
training loader's position is the data module's (data/resumable.py)."""

from digit_recognizer.resume.interruption import InterruptCheckpoint
from digit_recognizer.resume.random_state import RandomStateCheckpoint
from digit_recognizer.resume.scheduler_step import EpochEndSchedulerStep

__all__ = ["EpochEndSchedulerStep", "InterruptCheckpoint", "RandomStateCheckpoint"]
