"""Bring your own model: 25 HF architectures edgekit has no recipe for, each a tiny random-init checkpoint
directory, exported with ``edgekit export DIR --target all --precision fp32,int8`` exactly as a user would.

Every row must be ``ok``, or ``unsupported`` / ``skipped`` with the converter's (or the machine's) own one-line
reason; no run may crash or print a traceback. The exports are the slowest work of the suite, so one module
fixture runs them all in two long-lived worker processes (backend imports paid once per worker) and each
architecture's test reads its own result.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.hf_archs import ARCHS, export_all_targets, sweep_document

pytest.importorskip("transformers")

# Row statuses a user may see for an architecture/target pair that edgekit handles correctly.
ACCEPTED = {"ok", "unsupported", "skipped"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("hf_sweep")
    # spawn: a fresh interpreter per worker (forking a process that imported torch/JAX can deadlock)
    ctx = multiprocessing.get_context("spawn")
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with pytest.MonkeyPatch.context() as mp, ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        for key, value in env.items():  # the workers inherit these when they start
            mp.setenv(key, value)
        start = time.perf_counter()
        futures = {name: pool.submit(export_all_targets, name, str(root)) for name in ARCHS}
        results = {name: f.result() for name, f in futures.items()}
    dump = os.environ.get("EDGEKIT_HF_SWEEP_JSON")  # the README's table: benchmarks/hf_sweep.py --from FILE
    if dump:
        doc = sweep_document(results, 2, time.perf_counter() - start, "pytest tests/test_hf_sweep.py")
        Path(dump).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return results


def test_at_least_24_architectures():
    assert len(ARCHS) >= 24


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_architecture_exports_to_every_target(sweep, name):
    result = sweep[name]
    assert "Traceback" not in result["stderr"], result["stderr"][-2000:]
    rows = result["rows"]
    assert rows, f"{name}: no report written (exit {result['code']}): {result['stderr'][-500:]}"
    bad = [r for r in rows if r["status"] not in ACCEPTED]
    assert not bad, f"{name}: " + "; ".join(
        f"{r['target']} {r['precision']} {r['status']}: {r.get('notes')}" for r in bad
    )
    assert result["code"] == 0, result["stderr"][-500:]
    for r in rows:
        if r["status"] != "ok":  # the reason is one line from the converter or the machine, never empty
            notes = r.get("notes") or []
            assert notes and notes[0] and "\n" not in notes[0], r
    targets = {r["target"] for r in rows}
    assert {"onnx", "openvino", "tflite", "executorch", "coreml", "tensorrt"} <= targets, targets
    # the portable targets must really produce artifacts for every architecture
    for target in ("onnx", "openvino"):
        assert all(r["status"] == "ok" for r in rows if r["target"] == target), rows
