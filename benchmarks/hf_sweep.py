#!/usr/bin/env python3
"""Bring your own model: every tiny random-init HF architecture of tests/hf_archs.py (none has an edgekit recipe)
exported with ``edgekit export DIR --target all --precision fp32,int8``, as tests/test_hf_sweep.py does, and the
architecture x target table of row statuses printed as markdown (the README's table) and written with each row's
note and each export's time to benchmarks/results/hf_sweep.json.

    python benchmarks/hf_sweep.py                # 2 worker processes, no latency measurement
    python benchmarks/hf_sweep.py --bench -j 1   # also time every artifact (serially: parallel runs skew latency)
    python benchmarks/hf_sweep.py --from FILE    # the table of a JSON written by this script or by the test suite
                                                 # (EDGEKIT_HF_SWEEP_JSON=FILE pytest tests/test_hf_sweep.py)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})

from tests.hf_archs import ARCHS, export_all_targets, sweep_document

TARGETS = ("onnx", "openvino", "tflite", "executorch", "coreml", "tensorrt")
MARK = {"ok": "ok", "unsupported": "unsupported", "skipped": "skipped", "fail": "FAIL", "error": "ERROR"}


def cell(rows: list[dict], target: str) -> str:
    """``fp32 / int8`` statuses of one target, e.g. ``ok / ok`` or ``ok / unsupported``."""
    by = {r["precision"]: MARK.get(r["status"], r["status"]) for r in rows if r["target"] == target}
    return " / ".join(by.get(p, "-") for p in ("fp32", "int8"))


def table(results: dict[str, dict]) -> str:
    lines = ["| architecture | " + " | ".join(TARGETS) + " | seconds |", "|---" * (len(TARGETS) + 2) + "|"]
    for name, res in results.items():
        cells = [cell(res["rows"], t) for t in TARGETS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-j", "--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--bench", action="store_true", help="also benchmark every artifact")
    p.add_argument("--arch", action="append", help="only these architectures (repeat)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "hf_sweep.json"))
    p.add_argument("--from", dest="source", help="print the table of this JSON (e.g. written by the test suite)")
    a = p.parse_args()
    if a.source:
        doc = json.loads(Path(a.source).read_text())["architectures"]
        print(table({n: {"rows": r["rows"], "seconds": r["seconds"]} for n, r in doc.items()}))
        return 0
    names = a.arch or list(ARCHS)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx) as pool:
            futures = {n: pool.submit(export_all_targets, n, root, bench=a.bench) for n in names}
            results = {}
            for n, f in futures.items():
                results[n] = f.result()
                print(f"{n}: exit {results[n]['code']}, {results[n]['seconds']:.0f} s", flush=True)
    wall = time.perf_counter() - start
    print(table(results))
    doc = sweep_document(results, a.jobs, wall, "python benchmarks/hf_sweep.py " + " ".join(sys.argv[1:]))
    Path(a.out).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"wrote {a.out} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
