"""Typed errors. Every message says what went wrong, where, and how to fix it.

The CLI turns any :class:`EdgekitError` into a one-line message on stderr and exit code 2 (bad input); any other
exception is an internal error, exit code 3 (``--debug`` shows its traceback). Raised while compiling,
validating or benchmarking one artifact, either becomes that artifact's row instead (edgekit.isolate; exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgekitError(Exception):
    """Base class for user-facing errors (bad input, missing backend, failed checks)."""

    exit_code = 2


class RecipeError(EdgekitError):
    """The recipe (YAML or CLI flags) is malformed or names something unknown."""


class ModelError(EdgekitError):
    """The model cannot be found, built or run with the declared inputs."""


class InputSpecError(EdgekitError):
    """An input has the wrong name, shape or dtype for the model's IO spec."""


class UnsupportedOpError(EdgekitError):
    """A target cannot convert an operation of the model."""


class MissingBackendError(EdgekitError):
    """A target's Python package is not installed."""

    def __init__(self, target: str, module: str, extra: str, kind: str = "target"):
        super().__init__(
            f"{kind} '{target}' needs the Python package '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'"
        )
        self.target, self.module, self.extra = target, module, extra


class CalibrationError(EdgekitError):
    """Calibration data is empty, malformed or does not match the model's inputs."""


class ParityError(EdgekitError):
    """A compiled artifact disagrees with its reference beyond tolerance."""


class DeviceError(EdgekitError):
    """A target or device cannot run here (no GPU, wrong OS, unreachable device)."""


class TrainingInterrupted(EdgekitError):
    """Training stopped on Ctrl-C (or SIGTERM/SIGHUP) after writing a checkpoint; exit code 128 + the signal."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.exit_code = 128 + signum


class OutputError(EdgekitError):
    """An output path cannot be written (too long a name, a file system that refuses it)."""


class OutputExistsError(OutputError):
    """The output directory or file exists and --force was not given."""


class IntegrityError(EdgekitError):
    """A run directory's files do not match the sha256 its manifest recorded."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A library's exception message on one line (libraries' messages span lines), at most ``limit`` characters."""
    return " ".join(str(exc).split())[:limit]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or a list of choices when none is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (choose from: {', '.join(choices)})" if choices else ""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of ``str(exc)`` (cut to ``limit`` characters), or "" when the message is empty: what a
    one-line error, a row's note or a failure record shows of an exception whose message may be a whole log."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line[:limit] if limit is not None else line


def first_line_or_type(exc: BaseException, limit: int | None = None) -> str:
    """:func:`first_line`, or the exception's type name when its message is empty."""
    return first_line(exc, limit) or type(exc).__name__
