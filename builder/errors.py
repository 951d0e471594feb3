"""Errors that the CLI reports as one line and a non-zero exit.

Anything raised as a `BuilderError` is a problem with the user's input or environment (a missing
file, a wrong key, a revision that does not exist). Anything else is a bug and keeps its traceback.
"""


class BuilderError(Exception):
    """A user-facing error: its message is printed as one line, and the exit code is 2."""


class RecipeError(BuilderError):
    """The recipe file is missing, malformed, or has an unknown or ill-typed key."""


class StoreError(BuilderError):
    """A store operation failed (bad URI, unreachable store, refused write)."""


class RepoNotFound(StoreError):
    pass


class RevisionNotFound(StoreError):
    pass


class CommitConflict(StoreError):
    """The branch moved since the stage started: someone else published in between."""


class StageError(BuilderError):
    """A stage cannot run: missing input columns, unknown stage, bad source."""


class SandboxError(BuilderError):
    """The sandbox cannot be used here (tool missing, kernel feature off, bad settings)."""
