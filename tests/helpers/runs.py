"""Where a finished run keeps its checkpoints, and an ensemble member's best one."""

from pathlib import Path


def checkpoints(root: Path, version: int = 0) -> Path:
    return root / "lightning_logs" / f"version_{version}" / "checkpoints"


def member(root: Path, version: int) -> Path:
    return next((root / "lightning_logs" / f"version_{version}" / "checkpoints").glob("best-*.ckpt"))
