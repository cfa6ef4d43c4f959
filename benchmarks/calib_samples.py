#!/usr/bin/env python3
"""How many calibration samples each range estimator needs: metric vs number of calibration samples.

The demo ViT (recipes/vit.yaml, trained weights from a run) is calibrated on n = 1 ... 1024 Fashion-MNIST
training images with each estimator (minmax, percentile 99.99, mse, entropy), three seeded draws each, and the
simulated INT8 model is scored on held-out test images: top-1 change vs FP32, top-1 agreement with FP32 and the
SQNR of the logits against FP32 (the most sensitive of the three). Results: benchmarks/results/calib_samples.json,
summarized in calibration/README.md.

    python benchmarks/calib_samples.py --weights runs/vit/model/weights.pt [--val 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from edgekit.archs import load_model
from edgekit.artifacts import package_versions
from edgekit.data import load_data
from edgekit.data.predict import predict_torch
from edgekit.metrics import agreement, sqnr_db, top1
from edgekit.pipeline import load_weights
from edgekit.quant import calibrate
from edgekit.recipe import DataSpec, Estimator, load_recipe

ROOT = Path(__file__).resolve().parent.parent
SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
SEEDS = [0, 1, 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="runs/vit/model/weights.pt")
    p.add_argument("--val", type=int, default=1000, help="held-out test images to score on")
    a = p.parse_args()
    recipe = load_recipe(ROOT / "recipes" / "vit.yaml")
    bundle = load_model(recipe.model)
    load_weights(bundle, a.weights)
    names = [s.name for s in bundle.inputs]
    val = load_data(DataSpec("fashion-mnist", "test", samples=a.val), bundle, "validation")
    fp32 = predict_torch(bundle.module, names, val, 200, progress=False)
    fp32_top1 = top1(fp32, val.labels)
    results = []
    for est in Estimator:
        spec = replace(recipe.quantization, estimator=est)
        for n in SIZES:
            runs = []
            for seed in SEEDS:
                calib = load_data(DataSpec("fashion-mnist", "train", samples=n, seed=seed), bundle, "calibration")
                start = time.perf_counter()
                cal = calibrate(bundle.module, names, calib, spec, bundle)
                seconds = time.perf_counter() - start
                out = predict_torch(cal.sim, names, val, 200, progress=False)
                runs.append(
                    {
                        "seed": seed,
                        "top1_delta": top1(out, val.labels) - fp32_top1,
                        "agreement": agreement(out, fp32),
                        "sqnr_db": sqnr_db(fp32, out),
                        "calibrate_s": seconds,
                    }
                )
            row = {"estimator": est.value, "samples": n, "runs": runs}
            for k in ("top1_delta", "agreement", "sqnr_db", "calibrate_s"):
                vals = np.array([r[k] for r in runs])
                row[k] = {"mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())}
            results.append(row)
            print(
                f"{est.value:10s} n={n:5d} top1 {row['top1_delta']['mean']:+.2f} agree {row['agreement']['mean']:.2f} "
                f"sqnr {row['sqnr_db']['mean']:.1f} dB ({row['sqnr_db']['min']:.1f}-{row['sqnr_db']['max']:.1f}) "
                f"{row['calibrate_s']['mean']:.2f} s",
                flush=True,
            )
    doc = {
        "model": f"{recipe.description} (weights {a.weights})",
        "quantization": "per-channel int8 weights, per-tensor asymmetric int8 activations (the recipe's settings)",
        "validation": f"{val.description}, {len(val)} images; FP32 top-1 {fp32_top1:.2f}",
        "calibration": "fashion-mnist train, seeded draws " + ", ".join(map(str, SEEDS)),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": package_versions(),
        "results": results,
    }
    dest = ROOT / "benchmarks" / "results" / "calib_samples.json"
    dest.write_text(json.dumps(doc, indent=1))
    print(f"written {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
