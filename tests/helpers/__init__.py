"""Shared test helpers, importable as `helpers.x` (pytest puts tests/ on sys.path: pyproject's
`pythonpath`). Test modules import from here, never from each other; fixtures live in conftest.py."""
