"""Errors a user can fix themselves: the CLI reports them as one line, without a traceback."""


class UserError(Exception):
    """Base class for problems with the user's input, files or configuration."""


class DataError(UserError):
    """A CSV (or its cache) cannot be used: the message names the file, line and column."""


class CheckpointError(UserError):
    """A checkpoint path cannot be resolved or loaded."""
