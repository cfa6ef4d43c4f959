"""``edgekit results --merge``: new recipes' rows added to an existing table, every other row kept verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import RecipeError
from edgekit.validate.results_table import load_runs, merge_results, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "RESULTS.md"


def _report(recipe: str, int8_status: str = "ok") -> dict:
    row = {"target": "onnx", "samples": 100, "size_mb": 0.1, "speedup": 1.0, "latency": {"p50_ms": 0.1}}
    return {
        "recipe": recipe,
        "metric": "top1",
        "budget": 1.0,
        "passed": int8_status == "ok",
        "model": {"family": "tnt", "parameters": 1234},
        "train": {"steps": 10, "epochs": 1.0, "seconds": 3.0},
        "transforms": [],
        "calibration": {"samples": 16, "estimator": "minmax"},
        "validation": {"data": "fashion-mnist/test", "samples": 100},
        "reference": {"fp32_torch": 80.0, "sim_int8": 79.5},
        "rows": [
            {**row, "precision": "fp32", "status": "ok", "accuracy": {"metric": 80.0}, "delta": 0.0},
            {
                **row,
                "precision": "int8",
                "quantizer": "edgekit",
                "status": int8_status,
                "accuracy": {"metric": 77.0},
                "delta": -3.0,
                "notes": ["too far"],
            },
        ],
    }


def _runs(tmp_path: Path, reports: list[dict]):
    dirs = []
    for rep in reports:
        d = tmp_path / rep["recipe"]
        d.mkdir()
        (d / "report.json").write_text(json.dumps(rep))
        dirs.append(d)
    return load_runs(dirs)


def test_merge_keeps_existing_rows_and_records_the_merge(tmp_path):
    existing = DOC.read_text()
    runs = _runs(tmp_path, [_report("aaa-new"), _report("zzz-new", int8_status="fail")])
    merged = merge_results(existing, runs, "edgekit results runs/x --merge --out docs/RESULTS.md", "2026-12-01")
    old_rows = [x for x in existing.splitlines() if x.startswith("| `")]
    assert all(x in merged.splitlines() for x in old_rows)  # every existing row, verbatim
    new_rows = [x for x in merged.splitlines() if x.startswith(("| `aaa-new`", "| `zzz-new`"))]
    assert len(new_rows) == 2 * (1 + 2)  # a recipe row and two artifact rows each
    assert "then rows of `aaa-new`, `zzz-new` added by `edgekit results runs/x --merge" in merged
    assert "on 2026-12-01; do not edit by hand." in merged
    assert "`zzz-new` onnx int8: **fail**" in merged and "None: every row" not in merged
    lines = merged.splitlines()
    recipes = [x.split(" | ")[0] for x in lines[lines.index("## Recipes") :] if x.startswith("| `")]
    recipes = recipes[: recipes.index("| `zzz-new`") + 1]
    assert recipes == sorted(recipes, key=lambda r: r.strip("| `"))  # sorted by recipe name


def test_merging_the_same_runs_again_replaces_their_rows(tmp_path):
    first = merge_results(DOC.read_text(), _runs(tmp_path, [_report("aaa-new")]), "cmd", "d1")
    again = merge_results(first, load_runs([tmp_path / "aaa-new"]), "cmd", "d2")
    assert again.count("| `aaa-new` |") == first.count("| `aaa-new` |") == 3


def test_merge_refuses_a_table_of_another_shape(tmp_path):
    runs = _runs(tmp_path, [_report("aaa-new")])
    with pytest.raises(RecipeError, match="not a results table"):
        merge_results("# something else\n", runs, "cmd", "d")
    bad = render(runs, "cmd").replace("| recipe | model |", "| recipe | family |")
    with pytest.raises(RecipeError, match="columns differ"):
        merge_results(bad, runs, "cmd", "d")
