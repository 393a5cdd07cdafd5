"""Recipes by name: the shipped files, renamed ones still accepted, unknown ones one line."""

from __future__ import annotations

import pytest

from digit_recognizer.errors import UserError
from digit_recognizer.recipes import recipe_names, recipe_path, recipes_dir


def test_the_shipped_recipes_are_found_by_name_with_or_without_yaml():
    assert recipe_names() == ["best.yaml", "cnn.yaml", "deotte.yaml", "quick.yaml"]
    assert recipe_path("best") == recipe_path("best.yaml") == recipes_dir() / "best.yaml"


def test_strong_yaml_is_now_deotte_yaml_and_says_so(capsys):
    """strong.yaml scored below best.yaml on every yardstick, so its name claims no more."""
    assert recipe_path("strong.yaml") == recipes_dir() / "deotte.yaml"
    assert "the recipe strong.yaml is now called deotte.yaml" in capsys.readouterr().err


def test_an_unknown_recipe_is_one_line_naming_the_recipes():
    with pytest.raises(UserError, match=r"--config nosuch.yaml: no such file, and no recipe of that name \(recipes: best.yaml"):
        recipe_path("nosuch.yaml")
