"""Errors users see: one line that says what happened and what to do, and an exit code."""
from __future__ import annotations


class ProsectorError(Exception):
    """Base of every error Prosector reports to a user (never shown as a traceback)."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.hint = hint
        super().__init__(message)

    def user_message(self) -> str:
        parts = [f"{self.path}: {self}" if self.path else str(self)]
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class InputError(ProsectorError):
    """Bad input or arguments: a file we cannot read, a wrong grid, an unknown term (exit 2)."""

    exit_code = 2


class RuntimeFailure(ProsectorError):
    """Something failed while working on valid input (exit 1)."""

    exit_code = 1
