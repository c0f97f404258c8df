"""Exceptions with one-line messages that name the file and the problem."""
from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: a corrupt file, a missing photo, an empty or NaN sketch, a wrong shape.

    The message is one line and, where a file is involved, starts with that file's path.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(problem if path is None else f"{self.path}: {problem}")


class ConfigError(ValueError):
    """A bad run configuration: the message names the key (``train.epochs``) and what is wrong, in one line."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")
