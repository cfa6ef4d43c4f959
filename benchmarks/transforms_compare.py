#!/usr/bin/env python3
"""Measure what the exact transforms buy: LN vs UN-folded ViT, and MobileOne before vs after reparameterization.

Runs real recipes on Fashion-MNIST (training included) and writes benchmarks/results/transforms.json:
  vit-ln    ViT trained with LayerNorm                      (recipes/vit.yaml, optionally fewer epochs)
  vit-un    ViT trained with Unified Normalization, folded   (recipes/vit-un.yaml)
  mobileone-branches  MobileOne trained, exported with its train-time branches
  mobileone-reparam   the same weights, reparameterized (no retraining)

    python benchmarks/transforms_compare.py [--epochs 1] [--iterations 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from edgekit import run_recipe
from edgekit.artifacts import package_versions
from edgekit.recipe import BenchSpec, load_recipe

ROOT = Path(__file__).resolve().parent.parent


def summarize(name: str, result) -> dict:
    rep = result.report
    return {
        "run": name,
        "fp32_torch_top1": rep["reference"]["fp32_torch"],
        "train": rep["train"],
        "transforms": rep["transforms"],
        "rows": [
            {k: r.get(k) for k in ("target", "precision", "size_mb", "delta")}
            | {
                "top1": r["accuracy"]["metric"],
                "p50_ms": r["latency"]["p50_ms"],
                "p99_ms": r["latency"]["p99_ms"],
                "peak_rss_mb": r["latency"]["peak_rss_mb"],
            }
            for r in rep["rows"]
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=float, default=None, help="override the recipes' training epochs")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--runs", default="runs/bench-transforms")
    a = p.parse_args()
    runs = Path(a.runs)
    bench = BenchSpec(warmup=20, iterations=a.iterations)

    def recipe(path: str, **changes):
        r = load_recipe(ROOT / path)
        if a.epochs is not None and r.train is not None:
            changes.setdefault("train", replace(r.train, epochs=a.epochs))
        return r.with_(benchmark=bench, **changes)

    out = []
    for name, path in (("vit-ln", "recipes/vit.yaml"), ("vit-un", "recipes/vit-un.yaml")):
        print(f"== {name}", flush=True)
        out.append(summarize(name, run_recipe(recipe(path), runs / name, force=True)))
    mo = recipe("recipes/mobileone.yaml")
    print("== mobileone-branches", flush=True)
    out.append(
        summarize("mobileone-branches", run_recipe(mo.with_(transforms=()), runs / "mobileone-branches", force=True))
    )
    weights = str(runs / "mobileone-branches" / "model" / "weights.pt")
    print("== mobileone-reparam", flush=True)
    out.append(
        summarize(
            "mobileone-reparam",
            run_recipe(
                mo.with_(train=None, model=replace(mo.model, weights=weights)), runs / "mobileone-reparam", force=True
            ),
        )
    )
    doc = {
        "benchmark": "transforms_compare",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "latency": {"batch": 1, "threads": 2, "warmup": 20, "iterations": a.iterations},
        "versions": package_versions(),
        "results": out,
    }
    dest = ROOT / "benchmarks" / "results" / "transforms.json"
    dest.write_text(json.dumps(doc, indent=1, default=str))
    print(f"\n{'run':20s} {'target':9s} {'prec':5s} {'top-1':>6s} {'p50 ms':>7s} {'size MB':>8s}")
    for r in out:
        for row in r["rows"]:
            print(
                f"{r['run']:20s} {row['target']:9s} {row['precision']:5s} {row['top1']:6.2f} {row['p50_ms']:7.3f} "
                f"{row['size_mb']:8.2f}"
            )
    print(f"written {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
