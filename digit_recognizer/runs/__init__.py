"""A run folder's whole life: claimed (RunLogger, claim_folder), locked while it trains
(TrainingLock), its config saved when training starts (RunConfigSaver), found again by `last`,
`best` and the ensemble (folders), and taken back when a command fails before its work starts
(RunLogger.discard)."""

from digit_recognizer.runs.config import RunConfigSaver
from digit_recognizer.runs.ensembles import EnsembleFolder
from digit_recognizer.runs.folders import (
    ENSEMBLE_PREFIX,
    RUN_PREFIX,
    claim_folder,
    file_logger,
    find_checkpoint,
    log_root_of,
    member_checkpoint,
    numbered_folders,
    run_dir_of,
    run_dirs,
    run_folder,
    tensorboard_logger,
)
from digit_recognizer.runs.lock import TrainingLock, training_pid
from digit_recognizer.runs.logger import RunLogger

__all__ = ["ENSEMBLE_PREFIX", "EnsembleFolder", "RUN_PREFIX", "RunConfigSaver", "RunLogger", "TrainingLock", "claim_folder", "file_logger",
           "find_checkpoint", "log_root_of", "member_checkpoint", "numbered_folders", "run_dir_of", "run_dirs",
           "run_folder", "tensorboard_logger", "training_pid"]
