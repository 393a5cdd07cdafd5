"""An ensemble's folder, lightning_logs/ensemble_N/: the command that made it, its members' run
folders and which of them finished (ensemble.json), so that the same command continues it."""

from __future__ import annotations

import json
from pathlib import Path

from digit_recognizer.files import atomic_path
from digit_recognizer.names import ENSEMBLE_STATE
from digit_recognizer.runs.folders import ENSEMBLE_PREFIX, claim_folder, numbered_folders
from digit_recognizer.runs.logger import RunLogger


class EnsembleFolder:
    """lightning_logs/ensemble_N/: the command that made it, its members' run folders and which of
    them finished (ensemble.json, rewritten whole after each change), and its outputs."""

    def __init__(self, folder: Path, state: dict) -> None:
        self.folder, self.state = folder, state
        self.runs = [folder.parent / member["run"] for member in state["members"]]

    @classmethod
    def continue_or_start(cls, log_root: Path, identity: list[str], members: list[str]) -> EnsembleFolder:
        """The newest unfinished ensemble of the same command, else a new one with its run folders claimed."""
        for folder in reversed(numbered_folders(log_root, ENSEMBLE_PREFIX)):
            try:
                state = json.loads((folder / ENSEMBLE_STATE).read_text())
            except (OSError, ValueError):
                continue
            if state.get("arguments") == identity and not state.get("complete"):
                return cls(folder, state)
        folder = claim_folder(log_root, ENSEMBLE_PREFIX)
        runs = [_claim_run(log_root) for _ in members]
        state = {"arguments": identity, "complete": False,
                 "members": [{"member": m, "run": run.name, "finished": False} for m, run in zip(members, runs)]}
        ensemble = cls(folder, state)
        ensemble._save()
        return ensemble

    def finished(self, run: Path) -> bool:
        return self.state["members"][self.runs.index(run)]["finished"]

    def mark_finished(self, run: Path) -> None:
        self.state["members"][self.runs.index(run)]["finished"] = True
        self._save()

    def mark_complete(self) -> None:
        self.state["complete"] = True
        self._save()

    def _save(self) -> None:
        with atomic_path(self.folder / ENSEMBLE_STATE) as tmp:
            tmp.write_text(json.dumps(self.state, indent=2) + "\n")


def _claim_run(log_root: Path) -> Path:
    """A new run folder under `log_root`, claimed as RunLogger claims one."""
    return Path(RunLogger(save_dir=str(log_root.parent), name=log_root.name).log_dir)
