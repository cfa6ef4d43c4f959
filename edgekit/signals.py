"""SIGINT, SIGTERM and SIGHUP all stop edgekit the same way: as an exception, so cleanup runs.

Python's default for SIGTERM and SIGHUP is to die on the spot: no ``finally``, no ``with`` exit. A benchmark then
leaves its ``.NAME.tmp-*`` directory behind and its runner child running. Raised as :class:`Terminated`
(a KeyboardInterrupt, so every place that handles Ctrl-C handles them too), the signal unwinds the stack:
``subprocess.run`` kills its child, :class:`edgekit.artifacts.RunDir` removes its temporary directory, training
writes its checkpoint, and the CLI exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt (a bare KeyboardInterrupt is SIGINT)."""
    return getattr(exc, "signum", signal.SIGINT)


def _stop(signum: int, frame: FrameType | None) -> None:
    for sig in HANDLED:  # one stop is enough: a second signal must not cut the cleanup short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, every handled stop signal raises :class:`Terminated`; the previous handlers come back
    afterwards (the CLI also runs in-process, e.g. in tests). Outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in HANDLED}
    for sig in HANDLED:
        signal.signal(sig, _stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
