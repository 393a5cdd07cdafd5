"""The README as the test plan: each of its commands is one the end-to-end test can run
(tests/e2e/test_readme.py runs them)."""

from __future__ import annotations

from helpers.readme import plan, subcommand_of


def test_every_readme_command_has_a_plan():
    """Quick: each `python -m digit_recognizer` line of the README's bash blocks is one the slow test
    below can run (a known subcommand, nothing but the command on its line), or is in SKIPPED."""
    planned = plan()
    assert len(planned) >= 10, f"found only {len(planned)} commands in README.md's ```bash blocks"
    subcommands = {subcommand_of(args) for _, args in planned if args}
    assert {"fit", "predict", "ensemble"} <= subcommands
