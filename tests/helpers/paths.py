"""Where things are: the repository, its tests, the shipped recipes, the real competition data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"  # on a test subprocess's PYTHONPATH: `--trainer.callbacks+=helpers.signal_at.X`
RECIPES = REPO / "digit_recognizer" / "recipes"  # the shipped recipes
CNN_CONFIG = RECIPES / "cnn.yaml"  # also what a run without --config starts from
# The real competition files, when $DIGIT_RECOGNIZER_DATA names them (CI points it at its copy);
# the variable is then cleared for every test (tests/conftest.py), which choose their data folders themselves.
REAL_DATA = Path(os.environ["DIGIT_RECOGNIZER_DATA"]) if os.environ.get("DIGIT_RECOGNIZER_DATA") else None
