"""Checkpoints: written atomically (io), read and migrated from older layouts (reading), checked
before Lightning loads them (checks)."""

from digit_recognizer.checkpoints.checks import RESUMED_DATA_SETTINGS, check_checkpoint, check_resume
from digit_recognizer.checkpoints.io import AtomicCheckpointIO
from digit_recognizer.checkpoints.reading import (
    CHECKPOINT_FORMAT,
    DEFAULT_NETWORK,
    SPLIT_SETTINGS,
    describe_split,
    holds_rows_out,
    migrate_hyperparameters,
    network_settings,
    recorded_data_dir,
    read_checkpoint,
    recorded_inference,
    recorded_split,
)

__all__ = ["AtomicCheckpointIO", "CHECKPOINT_FORMAT", "DEFAULT_NETWORK", "RESUMED_DATA_SETTINGS", "SPLIT_SETTINGS",
           "check_checkpoint", "check_resume", "describe_split", "holds_rows_out", "migrate_hyperparameters",
           "network_settings", "read_checkpoint", "recorded_data_dir", "recorded_inference", "recorded_split"]
