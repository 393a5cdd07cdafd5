"""RunLogger: the TensorBoardLogger that claims its run folder atomically and can take back what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.tensorboard import SummaryWriter

from digit_recognizer.names import EPOCH_TAG
from digit_recognizer.runs.folders import RUN_PREFIX, claim_folder


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger that claims a new run folder with one `mkdir`, and can take back what it wrote.

    TensorBoardLogger picks "highest version + 1" and creates the folder later, so two runs started
    at the same moment can pick the same number; an exclusive mkdir makes the second one move on.
    Lightning creates the event file while it sets a run up, before the data is even read, so a
    command that fails there would leave an empty run folder (or an empty event file in the run it
    was to score); `discard` removes exactly what this process added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claimed: Path | None = None
        self._made_root = False
        self._files_before: set[Path] | None = None
        self._logged_metrics = False  # once it has, its events are the run's record: discard keeps them

    def _get_next_version(self) -> int:
        if rank_zero_only.rank != 0:  # only process 0 claims; the others get its folder by broadcast
            return super()._get_next_version()
        root = Path(self.root_dir)
        self._made_root = not root.exists()
        self._claimed = claim_folder(root, RUN_PREFIX)
        return int(self._claimed.name.removeprefix(RUN_PREFIX))

    @property
    @rank_zero_experiment
    def experiment(self) -> SummaryWriter:
        if self._experiment is None:
            folder = Path(self.log_dir)
            self._files_before = set(folder.iterdir()) if folder.is_dir() else set()
        return super().experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Lightning's epoch counter, which it logs beside every metric as "epoch", as EPOCH_TAG:
        TensorBoard's Time Series sorts groups by name and expands the first two, and "epoch" led."""
        if "epoch" in metrics:
            metrics = {(EPOCH_TAG if key == "epoch" else key): value for key, value in metrics.items()}
        super().log_metrics(metrics, step)
        self._logged_metrics = True

    def discard(self) -> None:
        """Close the event file and remove what this process added to the run folder, unless it
        has logged metrics: a run that failed after some epochs (a full disk) keeps their record."""
        if self._experiment is not None:
            self._experiment.close()
            self._experiment = None
        if self._logged_metrics:
            return
        folder = Path(self.log_dir)
        if self._files_before is not None and folder.is_dir():
            for path in set(folder.iterdir()) - self._files_before:
                if path.name.startswith("events.out.tfevents.") or path.name == "hparams.yaml":
                    path.unlink()
        self._files_before = None
        for made, empty in ((self._claimed is not None, self._claimed), (self._made_root, Path(self.root_dir))):
            if made and empty is not None and empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
