"""The suite's own shape: unit/ and e2e/ hold the tests, helpers/ what they share, and no test
module imports another (shared code goes to tests/helpers/, shared fixtures to a conftest.py)."""

from __future__ import annotations

import ast

from helpers.paths import TESTS


def all_test_files() -> list:
    return sorted(TESTS.rglob("test_*.py"))


def test_every_test_file_is_under_unit_or_e2e():
    stray = [str(path.relative_to(TESTS)) for path in all_test_files() if path.relative_to(TESTS).parts[0] not in ("unit", "e2e")]
    assert not stray, f"test files outside tests/unit/ and tests/e2e/: {stray}"


def test_no_test_module_imports_another():
    offending = []
    for path in all_test_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] in ("conftest", "unit", "e2e") or any(part.startswith("test_") for part in parts):
                    offending.append(f"{path.relative_to(TESTS)}:{node.lineno}: {module}")
    assert not offending, f"test modules importing test modules or conftest (use tests/helpers/): {offending}"
