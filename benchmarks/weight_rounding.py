#!/usr/bin/env python3
"""EfficientNet-Lite1 graph INT8 with and without ``weight_rounding``, on ONNX Runtime, OpenVINO and LiteRT.

Per target three artifacts: FP32, graph INT8 with ``bias_correction`` (the earlier benchmark setting) and graph INT8
with ``bias_correction`` + ``weight_rounding: {}`` (the target's profile, asymmetric activations, calibrated on the
10 photos of ``photos/train``). Each is validated on the 8 photos of ``photos/test`` against the FP32 PyTorch model:
cosine, top-1 agreement, and per photo the margin (the logit of FP32's class minus the best other logit; negative
= a flipped top-1). Latency: every artifact in its own process, alternated over ``--rounds`` rounds with the order
rotated each round; the JSON keeps every round and, per INT8 artifact, the spread of the per-round FP32/INT8 ratio.

    python benchmarks/weight_rounding.py --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from peer_compare import setup

from edgekit.artifacts import package_versions
from edgekit.data.predict import predict_torch
from edgekit.evaluate import predict_artifact
from edgekit.metrics import agreement, cosine
from edgekit.quant.graph import graph_quantize_profiles
from edgekit.recipe import BenchSpec, DataSpec, Precision, QuantSpec, WeightRoundingSpec
from edgekit.targets.base import CompileContext, get_target
from edgekit.validate.latency import bench_local

TARGETS = ("onnx", "openvino", "tflite")
VARIANTS = {"bias_correction": {}, "weight_rounding": {"weight_rounding": WeightRoundingSpec()}}


def margins(outputs: np.ndarray, fp32: np.ndarray) -> list[float]:
    """Per sample, the logit of FP32's top-1 class minus the largest other logit (< 0: the top-1 flipped)."""
    top = fp32.argmax(-1)
    return [float(o[t] - np.delete(o, t).max()) for o, t in zip(outputs, top, strict=True)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "weight_rounding_efficientnet-lite1.json"))
    a = p.parse_args()
    bundle, calib, val, seq, what = setup("efficientnet-lite1", 128, 500)
    names = [s.name for s in bundle.inputs]
    fp32 = predict_torch(bundle.module, names, val, 50)
    specs = {
        v: QuantSpec(
            calibration=DataSpec("given"),
            activation_symmetric=False,
            bias_correction=True,
            **extra,
        )
        for v, extra in VARIANTS.items()
    }
    profiles = tuple(get_target(t).quant_profile for t in TARGETS)
    programs = {v: graph_quantize_profiles(bundle.module, bundle, names, calib, q, profiles) for v, q in specs.items()}
    results, dirs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in TARGETS:
            target = get_target(t)
            for v in ("fp32", *VARIANTS):
                label = f"{t} {v}"
                work, adir = Path(tmp) / f"work_{t}_{v}", Path(tmp) / f"{t}_{v}"
                work.mkdir()
                adir.mkdir()
                if v == "fp32":
                    ctx = CompileContext(bundle, bundle.module, None, None, QuantSpec(), calib, work)
                    art = target.export(ctx, Precision.FP32, {}, adir)
                else:
                    res = programs[v][target.quant_profile]
                    ctx = CompileContext(bundle, bundle.module, res.program, res.encodings, specs[v], calib, work)
                    art = target.export(ctx, Precision.INT8, {}, adir)
                out = predict_artifact(target, art, val, 50, a.threads)
                m = margins(out, fp32)
                results[label] = {
                    "target": t,
                    "variant": v,
                    "size_mb": art.size_mb,
                    "cosine_vs_fp32": cosine(out, fp32),
                    "agreement_vs_fp32": agreement(out, fp32),
                    "margins": m,
                    "min_margin": min(m),
                }
                dirs[label] = adir
                print(
                    f"{label}: cosine {results[label]['cosine_vs_fp32']:.4f}, agreement "
                    f"{results[label]['agreement_vs_fp32']:.1f}%, min margin {min(m):+.3f}",
                    flush=True,
                )
        bench = BenchSpec(warmup=10, iterations=a.iterations, threads=a.threads)
        order, rounds = list(dirs), []
        for i in range(a.rounds):
            shift = order[i % len(order) :] + order[: i % len(order)]
            rounds.append({label: bench_local(dirs[label], bench, seq)["p50_ms"] for label in shift})
            print(f"round {i + 1}: " + ", ".join(f"{k} {rounds[-1][k]:.2f}" for k in order), flush=True)
    for label, row in results.items():
        row["p50_ms_median"] = statistics.median(r[label] for r in rounds)
        if row["variant"] != "fp32":
            ratios = [r[f"{row['target']} fp32"] / r[label] for r in rounds]
            row["fp32_over_int8_per_round"] = {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
            }
    doc = {
        "benchmark": "weight_rounding",
        "model": what,
        "calibration": calib.description,
        "validation": val.description,
        "fp32_margins": margins(fp32, fp32),
        "latency_settings": {**bench.__dict__, "batch": 1, "rounds": a.rounds, "order": "rotated by one each round"},
        "load_average": os.getloadavg(),
        "versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "info": {v: {p: res.info.get("weight_rounding") for p, res in programs[v].items()} for v in VARIANTS},
        "rounds": rounds,
        "results": results,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1))
    print(
        f"\n{'artifact':26s} {'cos':>7s} {'agree%':>7s} {'min margin':>10s} {'p50 ms':>8s} {'FP32/INT8 per round':>26s}"
    )
    for label, r in results.items():
        sp = r.get("fp32_over_int8_per_round")
        spread = f"{sp['median']:.2f} ({sp['min']:.2f}-{sp['max']:.2f})" if sp else "-"
        print(
            f"{label:26s} {r['cosine_vs_fp32']:7.4f} {r['agreement_vs_fp32']:7.1f} {r['min_margin']:+10.3f} "
            f"{r['p50_ms_median']:8.2f} {spread:>26s}"
        )
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
