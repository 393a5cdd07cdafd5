"""The package's user errors are one line: as an exception in this process, as `error:` on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def raises_one_line(kind: type[Exception], match: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """pytest.raises for the package's user errors, which the CLI prints as one line: the message
    must be a single line (and match `match`, as with pytest.raises)."""
    with pytest.raises(kind, match=match) as info:
        yield info
    message = str(info.value)
    assert message and "\n" not in message, f"not one line: {message!r}"


def one_line_error(status: int, stderr: str) -> str:
    """The `error:` line of a command that failed on bad input: exit status 2, no traceback."""
    assert status == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]
