"""One artifact's failure is that artifact's row, not the end of the run.

Compiling, validating and benchmarking each artifact run inside :func:`isolated`. An exception there becomes the
stage's outcome: ``unsupported`` when the converter says it cannot represent the model (:class:`UnsupportedOpError`),
``error`` otherwise, with a one-line note naming the stage and the exception. The run goes on with the next
artifact and writes its report; its exit code says a row failed.

What is never turned into a row: Ctrl-C and the stop signals (``KeyboardInterrupt``), ``SystemExit``, and
``MemoryError`` (the next artifact would fail the same way; the CLI says how to fix it). Under ``--debug``
(:func:`reraise`) an ``error`` is re-raised as it was, so the CLI prints its traceback.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnsupportedOpError, first_line, first_line_or_type
from .status import Status

_RERAISE: ContextVar[bool] = ContextVar("edgekit_isolate_reraise", default=False)
NOTE_CHARS = 300  # a row's note keeps at most this much of an error's first line
NOT_ISOLATED = (MemoryError,)  # Exception subclasses that end the run anyway (BaseException-only ones do too)


@contextlib.contextmanager
def reraise(enabled: bool = True) -> Iterator[None]:
    """Within the block, a stage's error is raised instead of becoming a row (the CLI's ``--debug``)."""
    token = _RERAISE.set(enabled)
    try:
        yield
    finally:
        _RERAISE.reset(token)


@dataclass
class Outcome:
    """What :func:`isolated` yields; after the block, ``status`` is None when the stage succeeded."""

    stage: str
    status: Status | None = None  # ERROR | UNSUPPORTED
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status is not None


def failure_note(stage: str, exc: BaseException) -> str:
    """``validate failed: RuntimeError: CoreML reference interpreter cannot execute op 'silu'``."""
    line = first_line(exc, NOTE_CHARS)
    return f"{stage} failed: {type(exc).__name__}" + (f": {line}" if line else "")


@contextlib.contextmanager
def isolated(
    stage: str, what: str = "", remove: Path | None = None, log: Callable[[str], Any] | None = None
) -> Iterator[Outcome]:
    """Run the block as ``stage`` (compile, validate, bench) of the artifact ``what``; an exception becomes the
    yielded :class:`Outcome`. ``remove``: the artifact directory to delete when the stage fails (half written).
    """
    outcome = Outcome(stage)
    try:
        yield outcome
    except NOT_ISOLATED:
        raise
    except UnsupportedOpError as exc:  # the converter's own reason: the model is not representable there
        outcome.status, outcome.note = Status.UNSUPPORTED, first_line_or_type(exc, NOTE_CHARS)
    except Exception as exc:
        if _RERAISE.get():
            raise
        outcome.status, outcome.note = Status.ERROR, failure_note(stage, exc)
    if outcome.failed:
        if remove is not None:
            _remove(remove)
        if log is not None:
            log(f"  {what}: {outcome.note}" if what else f"  {outcome.note}")


def _remove(adir: Path) -> None:
    """Delete a failed artifact's directory, and its target's directory when that is left empty."""
    shutil.rmtree(adir, ignore_errors=True)
    parent = adir.parent
    with contextlib.suppress(OSError):
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
