"""Silence coremltools' import-time warnings that its native prediction library is missing off macOS.

On Linux every ``import coremltools`` logs six lines such as ``Failed to load _MLModelProxy: No module named
'coremltools.libcoremlpython'``: expected there (Core ML prediction needs macOS; edgekit validates with its
reference interpreter instead) and of no use to the reader. A filter on the ``coremltools`` logger drops exactly
those records; every other coremltools warning still shows. It must be in place before coremltools is first
imported: ``edgekit.targets`` installs it when it is imported, which every coremltools use in edgekit goes through.
"""

from __future__ import annotations

import logging

LOGGER = "coremltools"
_PREFIX = "Failed to load _ML"  # _MLModelProxy, _MLModelAssetProxy, _MLComputePlanProxy, _ML*ComputeDeviceProxy
_CAUSE = "libcoremlpython"  # the macOS-only extension module


class _MissingMacRuntime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(_PREFIX) and _CAUSE in message)


def quiet_coremltools() -> None:
    """Install the filter (once); cheap, and imports nothing of coremltools."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, _MissingMacRuntime) for f in logger.filters):
        logger.addFilter(_MissingMacRuntime())
