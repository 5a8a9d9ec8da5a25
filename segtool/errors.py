"""Errors the CLI turns into one-line messages. Exit codes: 1 failed input, 2 usage."""

from __future__ import annotations


class SegtoolError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = 1


class UsageError(SegtoolError):
    """Bad options or arguments: the command line must change."""

    exit_code = 2


class InputError(SegtoolError):
    """An input file or dataset that cannot be used."""

    exit_code = 1


class Interrupted(SegtoolError):
    """Ctrl-C or SIGTERM: the work done so far is kept; the message says how to continue."""

    exit_code = 130
