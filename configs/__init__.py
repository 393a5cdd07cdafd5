"""The shipped recipes, installed as `digit_recognizer.configs` (see digit_recognizer/recipes.py)."""
