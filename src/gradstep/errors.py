"""The user-facing error type: one line that names the file, line, column, key or path."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user's file, option or output path; the message is one line that names
    the place. The command line prints it as ``error: ...`` and exits with code 2."""
