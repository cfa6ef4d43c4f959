#!/usr/bin/env python3
"""ExecuTorch (XNNPACK) next to TFLite (LiteRT), FP32 and INT8 from one set of edgekit encodings, in one run.

For each model: calibrate once, lower to executorch and tflite at fp32 and int8, validate every artifact against
FP32 PyTorch and (int8) the simulated model, then time all four artifacts over ``--rounds`` rounds, alternating
the order each round (each artifact in its own process, batch 1). Writes benchmarks/results/executorch_<model>.json
with per-round p50s, their median, and the spread of the executorch/tflite p50 ratio.

Models:
    vit        the demo ViT's architecture (recipes/vit.yaml: 28x28, dim 192, 4 blocks) on Fashion-MNIST test
               images; random init unless --weights RUN/model/weights.pt (a trained `edgekit run recipes/vit.yaml`)
    minilm     all-MiniLM-L6-v2 (real weights) on real sentences (uncertainty-conll2010), 64 tokens
    efficientnet-lite1  real ImageNet weights on the real photos of the `photos` data source

    python benchmarks/executorch_vs_tflite.py --model efficientnet-lite1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from edgekit.archs import load_model
from edgekit.artifacts import package_versions
from edgekit.data import load_data
from edgekit.data.predict import predict_torch
from edgekit.evaluate import predict_artifact
from edgekit.metrics import agreement, compare
from edgekit.quant import calibrate
from edgekit.recipe import BenchSpec, DataSpec, ModelSpec, Precision, QuantSpec
from edgekit.targets.base import CompileContext, get_target
from edgekit.validate.latency import bench_local

VIT = {"hidden_size": 192, "num_attention_heads": 4, "intermediate_size": 384}
MODELS = {
    "vit": (
        lambda: load_model(ModelSpec("vit", VIT)),
        DataSpec("fashion-mnist", "train", samples=256),
        DataSpec("fashion-mnist", "test", samples=500),
        "demo ViT architecture (recipes/vit.yaml), Fashion-MNIST test images",
    ),
    "minilm": (
        lambda: load_model(ModelSpec("minilm")),
        DataSpec("text", "uncertainty-conll2010/train", samples=128),
        DataSpec("text", "uncertainty-conll2010/test", samples=200),
        "all-MiniLM-L6-v2 (real weights), uncertainty-conll2010 sentences, 64 tokens",
    ),
    "efficientnet-lite1": (
        lambda: load_model(ModelSpec("efficientnet_lite1")),
        DataSpec("photos", "train"),
        DataSpec("photos", "test"),
        "EfficientNet-Lite1 (ImageNet weights), real photos (calibration: photos/train, validation: photos/test)",
    ),
}
VARIANTS = [("executorch", Precision.FP32), ("tflite", Precision.FP32), ("executorch", Precision.INT8),
            ("tflite", Precision.INT8)]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--weights", help="trained state_dict for --model vit")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    a = p.parse_args()
    out = Path(a.out or Path(__file__).parent / "results" / f"executorch_{a.model}.json")
    build, calib_spec, val_spec, what = MODELS[a.model]
    torch.manual_seed(0)
    bundle = build()
    if a.weights:
        bundle.module.load_state_dict(torch.load(a.weights, map_location="cpu", weights_only=True))
        what += f", trained weights {a.weights}"
    elif a.model == "vit":
        what += ", random init"
    names = [s.name for s in bundle.inputs]
    calib = load_data(calib_spec, bundle, "calibration")
    val = load_data(val_spec, bundle, "validation")
    print(f"{a.model}: {what}; {bundle.num_parameters:,} parameters", flush=True)
    fp32 = predict_torch(bundle.module, names, val, 50, progress=False)
    qspec = QuantSpec(calibration=calib_spec)
    cal = calibrate(bundle.module, names, calib, qspec, bundle, "full_integer")  # both targets' profile
    sim = predict_torch(cal.sim, names, val, 50, progress=False)
    classes = bundle.task == "classification"
    bench = BenchSpec(warmup=5, iterations=a.iterations, threads=a.threads)
    rows, load_before = {}, os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = CompileContext(bundle, bundle.module, cal.sim, cal.encodings, qspec, calib, Path(tmp) / "work")
        ctx.workdir.mkdir()
        for target_name, precision in VARIANTS:
            label = f"{target_name} {precision.value}"
            print(f"compile {label}", flush=True)
            target, adir = get_target(target_name), Path(tmp) / label.replace(" ", "_")
            adir.mkdir()
            t0 = time.perf_counter()
            art = target.export(ctx, precision, {}, adir)
            compile_s = time.perf_counter() - t0
            outputs = predict_artifact(target, art, val, 50, a.threads, progress=False)
            acc = compare(outputs, fp32, None, "cosine", sim if precision is Precision.INT8 else None)
            if classes:  # does the artifact pick the class PyTorch picked, sample by sample?
                acc["agreement_vs_fp32"] = agreement(outputs, fp32)
                if precision is Precision.INT8:
                    acc["agreement_vs_sim"] = agreement(outputs, sim)
            rows[label] = {"variant": label, "target": target_name, "precision": precision.value,
                           "size_mb": art.size_mb, "compile_s": compile_s, "notes": art.notes, **acc,
                           "p50_ms_rounds": []}  # fmt: skip
            print(f"  {art.size_mb:.1f} MB, cosine vs FP32 {acc['cosine_vs_fp32']:.4f}", flush=True)
        for r in range(a.rounds):  # alternate the order: a machine that gets busier favours no variant
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for target_name, precision in order:
                label = f"{target_name} {precision.value}"
                lat = bench_local(Path(tmp) / label.replace(" ", "_"), bench, val_spec.max_length)
                rows[label]["p50_ms_rounds"].append(lat["p50_ms"])
            print(f"round {r + 1}/{a.rounds} done", flush=True)
    for row in rows.values():
        row["p50_ms_median"] = statistics.median(row["p50_ms_rounds"])
    ratios = {}
    for precision in ("fp32", "int8"):
        et, tf = rows[f"executorch {precision}"]["p50_ms_rounds"], rows[f"tflite {precision}"]["p50_ms_rounds"]
        per_round = [e / t for e, t in zip(et, tf)]
        ratios[precision] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
    for target_name in ("executorch", "tflite"):
        f, i = rows[f"{target_name} fp32"], rows[f"{target_name} int8"]
        i["int8_speedup_vs_fp32"] = f["p50_ms_median"] / i["p50_ms_median"]
    doc = {
        "benchmark": "executorch_vs_tflite",
        "model": a.model,
        "description": what,
        "parameters": bundle.num_parameters,
        "calibration": {"data": calib.description, "samples": len(calib), "estimator": qspec.estimator.value},
        "validation": {"data": val.description, "samples": len(val)},
        "latency_settings": {**bench.__dict__, "batch": 1, "rounds": a.rounds, "order": "alternating"},
        "executorch_over_tflite_p50": ratios,
        "load_avg_before_after": [load_before, os.getloadavg()],
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
        "versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "results": list(rows.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"\n{'variant':18s} {'MB':>6s} {'cos fp32':>8s} {'agree%':>7s} {'cos sim':>8s} {'p50 ms':>8s}")
    for r in rows.values():
        agree = r.get("agreement_vs_fp32")
        cs = r.get("cosine_vs_sim")
        print(f"{r['variant']:18s} {r['size_mb']:6.1f} {r['cosine_vs_fp32']:8.4f} "
              f"{(f'{agree:.1f}' if agree is not None else '-'):>7s} {(f'{cs:.4f}' if cs else '-'):>8s} "
              f"{r['p50_ms_median']:8.2f}")  # fmt: skip
    print(f"executorch/tflite p50: {json.dumps(ratios)}; load {doc['load_avg_before_after']}")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
