"""coremltools' "Failed to load _MLModelProxy ..." lines (its macOS-only runtime, missing elsewhere) are silenced
when edgekit imports it; its other warnings are not."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest


def test_importing_coremltools_through_edgekit_prints_no_proxy_lines():
    pytest.importorskip("coremltools", reason="coreml extra not installed")
    code = "import edgekit.targets.coreml, edgekit.targets.coreml_reference, coremltools.models.compute_plan"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Failed to load _ML" not in proc.stderr, proc.stderr  # (a bare `import coremltools` prints six on Linux)


def test_only_the_missing_runtime_records_are_dropped():
    from edgekit.targets.quiet import LOGGER, quiet_coremltools

    quiet_coremltools()
    quiet_coremltools()  # once is enough: no second filter
    logger = logging.getLogger(LOGGER)
    assert len(logger.filters) == 1
    keep = logging.LogRecord(LOGGER, logging.WARNING, __file__, 1, "Torch version 9 has not been tested", None, None)
    drop = logging.LogRecord(
        LOGGER, logging.WARNING, __file__, 1, "Failed to load _MLModelProxy: No module named '%s'", ("x",), None
    )
    drop.args = ("coremltools.libcoremlpython",)
    assert logger.filter(keep) and not logger.filter(drop)
