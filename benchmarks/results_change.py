#!/usr/bin/env python3
"""Before/after of docs/RESULTS.md: each recipe's INT8 rows in two versions of the table, side by side.

Reads the "Every target and precision" table of two RESULTS.md files (e.g. the one in git before a change and the
one after) and prints, per recipe and target, the INT8 status, metric (and its change against FP32), size and p50
latency (and speedup against the same run's FP32) before and after, plus each version's quantizer label. Latencies
come from different runs, possibly on different machines: compare the speedups (each against its own run's FP32),
not the milliseconds.

    git show 78a993e:docs/RESULTS.md > /tmp/before.md
    python benchmarks/results_change.py /tmp/before.md docs/RESULTS.md > /tmp/change.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HEADER = "| recipe | target | precision | status |"


def int8_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(recipe, target) -> the INT8 row's cells by column name."""
    lines = path.read_text().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith(HEADER)), None)
    if start is None:
        raise SystemExit(f"{path}: no '{HEADER} ...' table (not an edgekit RESULTS.md)")
    names = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
        if cells.get("precision", "").startswith("int8"):
            rows[cells["recipe"].strip("`"), cells["target"]] = cells
    return rows


def _cell(row: dict[str, str] | None, key: str) -> str:
    return (row or {}).get(key, "-") or "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    a = p.parse_args()
    old, new = int8_rows(a.before), int8_rows(a.after)
    print(
        "| recipe | target | quantizer before / after | status before / after | value before / after | "
        "Δ vs FP32 before / after | size MB before / after | speedup vs FP32 before / after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(set(old) | set(new)):
        b, n = old.get(key), new.get(key)
        pairs = [
            (_cell(b, "precision").removeprefix("int8"), _cell(n, "precision").removeprefix("int8")),
            (_cell(b, "status"), _cell(n, "status")),
            (_cell(b, "value"), _cell(n, "value")),
            (_cell(b, "Δ vs FP32"), _cell(n, "Δ vs FP32")),
            (_cell(b, "size MB"), _cell(n, "size MB")),
            (_cell(b, "speedup vs FP32"), _cell(n, "speedup vs FP32")),
        ]
        cells = " | ".join(f"{x.strip(' ()') or '-'} / {y.strip(' ()') or '-'}" for x, y in pairs)
        print(f"| `{key[0]}` | {key[1]} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
