"""Model factories for the sweep tests (``tests.sweep_factories:NAME``), imported in the sweep's worker processes."""

from __future__ import annotations

import os


def crash():
    """Kill the worker process outright, as a segfault or the OOM killer would."""
    os._exit(3)
