"""The shipped recipes (the YAML files beside this module), found by name from any folder.

They are package data, so `--config cnn.yaml` works after `pip install` wherever the user is; a
path to a file still wins over a recipe of the same name.
"""

from __future__ import annotations

import sys
from pathlib import Path

from digit_recognizer.errors import UserError

DEFAULT_RECIPE = "cnn.yaml"  # the reference recipe: every run's base config
RENAMED_RECIPES = {"strong.yaml": "deotte.yaml"}  # earlier names, still accepted: a name claims no more than its numbers


def recipes_dir() -> Path:
    """The folder of the shipped recipes."""
    return Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    return sorted(path.name for path in recipes_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """An existing file `name`, else the installed recipe `name` (with or without .yaml)."""
    given = Path(name)
    if given.is_file():
        return given
    renamed = RENAMED_RECIPES.get(name) or RENAMED_RECIPES.get(f"{name}.yaml")
    if renamed is not None and given.parent == Path("."):
        print(f"note: the recipe {name} is now called {renamed}", file=sys.stderr)
        return recipes_dir() / renamed
    for candidate in (name, f"{name}.yaml"):
        path = recipes_dir() / candidate
        if given.parent == Path(".") and path.is_file():
            return path
    raise UserError(f"--config {name}: no such file, and no recipe of that name "
                    f"(recipes: {', '.join(recipe_names())})")


def default_config() -> Path:
    return recipes_dir() / DEFAULT_RECIPE
