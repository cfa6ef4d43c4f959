#!/usr/bin/env python3
"""Wall time of one sweep of every shipped recipe (recipes/*.yaml, reduced mode, each recipe's own targets and
precisions, benchmark included) under each executor: local sequential (1 worker), local pool (sized to the
machine) and Ray (a local cluster started by the sweep, its start-up included). Each mode runs into a fresh
directory, so nothing is reused. Records the machine's load (os.getloadavg) before and after each mode, since
other work on the machine changes the numbers, and whether every mode gave the same table (status and metric
columns). Results: benchmarks/results/sweep_executors.json, summarized in the README ("Scaling out").

    python benchmarks/sweep_executors.py [--modes local-1,local-pool,ray] [--recipes vit,bert]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from edgekit.artifacts import package_versions
from edgekit.sweep import run_sweep, sweep_from_dict
from edgekit.sweep.executors import cpus_here
from edgekit.sweep.report import COMPARED

ROOT = Path(__file__).resolve().parent.parent
MODES = {  # name: (executor, workers)
    "local-1": ("local", 1),
    "local-pool": ("local", None),
    "ray": ("ray", None),
}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--recipes", help="comma list of recipe names (default: every recipes/*.yaml)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_executors.json"))
    a = p.parse_args()
    files = sorted((ROOT / "recipes").glob("*.yaml"))
    if a.recipes:
        files = [f for f in files if f.stem in a.recipes.split(",")]
    spec = sweep_from_dict(
        {"name": "shipped-recipes", "models": [{"recipe": str(f)} for f in files], "overrides": {"reduced": True}}
    )
    modes, tables = [], {}
    for name in a.modes.split(","):
        executor, workers = MODES[name]
        with tempfile.TemporaryDirectory(prefix=f"sweep-bench-{name}-") as tmp:
            before = load()
            begin = time.perf_counter()
            res = run_sweep(spec, ROOT, Path(tmp) / "sweep", executor, workers=workers, progress=False)
            wall = time.perf_counter() - begin
            after = load()
        rows = res.report["rows"]
        tables[name] = sorted(tuple(str(r.get(k)) for k in COMPARED) for r in rows)
        jobs = {r["job"]: r for r in rows}
        modes.append(
            {
                "mode": name,
                "executor": executor,
                "workers": workers,
                "wall_s": round(wall, 1),
                "jobs": res.report["summary"]["jobs"],
                "job_states": {k: v for k, v in res.report["summary"].items() if k in ("done", "error", "pending")},
                "rows": res.report["summary"]["rows"],
                "job_seconds": {j: r.get("seconds") for j, r in jobs.items()},
                "errors": {r["job"]: r["note"] for r in rows if r["status"] == "error"},
                "loadavg_before": before,
                "loadavg_after": after,
            }
        )
        print(f"{name}: {wall:.1f} s, load {before} -> {after}, rows {res.report['summary']['rows']}", flush=True)
    first = next(iter(tables.values()))
    doc = {
        "benchmark": "sweep_executors",
        "command": "python " + " ".join(shlex.quote(x) for x in [str(Path(sys.argv[0])), *sys.argv[1:]]),
        "recipes": [f.stem for f in files],
        "reduced": True,
        "cpus": cpus_here(),
        "platform": {"machine": platform.machine(), "node": platform.node(), "python": platform.python_version()},
        "versions": package_versions() | {"ray": _version("ray")},
        "modes": modes,
        "same_table": all(t == first for t in tables.values()),
        "note": "wall time includes worker start-up (spawned interpreters; for Ray also the cluster start); "
        "loadavg is the 1/5/15-minute load of the whole machine, which other work shares",
    }
    Path(a.out).write_text(json.dumps(doc, indent=1))
    print(f"wrote {a.out}")


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
