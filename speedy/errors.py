"""Typed errors whose exit codes the CLI maps one to one.

Exit codes (documented in `speedy --help` and README):
  0 ok · 1 unexpected · 2 bad usage or bad input · 3 missing or bad model/artifact · 4 output cannot be written
"""

from __future__ import annotations


class SpeedyError(Exception):
    """Base class: a one-line message meant for the user, plus the process exit code."""

    exit_code: int = 1


class InputError(SpeedyError, ValueError):
    """Bad user input: text, options, control values, files given as input (exit 2)."""

    exit_code = 2


class ModelError(SpeedyError):
    """A model, source wheel or artifact folder is missing, corrupt or unusable (exit 3)."""

    exit_code = 3


class ParityError(ModelError):
    """A graph or backend disagrees with its reference beyond the family's tolerance (names output and
    difference): export against PyTorch, compile and trace against the source."""


class MissingExtraError(ModelError):
    """An optional dependency is not installed; the message names the extra (exit 3)."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the '{package}' package: pip install 'openspeedy[{extra}]'")


class OutputError(SpeedyError):
    """The output path cannot be written (exit 4)."""

    exit_code = 4
