"""AtomicCheckpointIO: checkpoint files that a kill cannot truncate.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives in
the system temp folder; when that is another filesystem the final "move" is a copy into place, so
a `kill -9` during it leaves a truncated checkpoint (Lightning issue #21253). AtomicCheckpointIO
writes beside the target and renames (one atomic step on any local filesystem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from digit_recognizer.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are all-or-nothing: the old file or the complete new one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:  # remote storage: fsspec's own handling
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_file(path) as file:  # a full disk: one UserError line, the previous last.ckpt kept
            torch.save(checkpoint, file)
