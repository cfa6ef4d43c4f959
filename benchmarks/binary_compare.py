#!/usr/bin/env python3
"""Binary quantization on a small ViT: softmax attention vs EcoFormer attention vs 1-bit weights.

Every variant is a real ``edgekit run`` (run directories under --runs): the HF ViT of ``make demo`` (28x28,
patch 4, dim 192, 4 heads, 4 blocks) trained from scratch on the 60k Fashion-MNIST training images with the
variant's train-phase transform, validated on the 10k test images, exported at FP32 to every target:

  softmax      no transform
  ecoformer    ``ecoformer`` (shared Q/K projection, 16-bit kernelized hash, 25 anchors, top-10 pairs)
  binary-w     ``binary_weights`` (1-bit weights in every transformer block; patch embedding/classifier float)

Then, with random-init models of the same width (latency depends on shapes only), a sequence-length sweep:
image sizes 28, 56, 112, 224 (T = 49, 196, 784, 3136 patches + [CLS]), softmax vs EcoFormer, latency on ONNX
Runtime and OpenVINO (f32 hint), batch 1, 2 threads, each artifact in its own process. The ops/energy proxy
comes from each run's report. Results: benchmarks/results/binary.json.

    python benchmarks/binary_compare.py [--epochs 1] [--iterations 200] [--skip-train]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from edgekit import run_recipe
from edgekit.archs import load_model
from edgekit.artifacts import package_versions
from edgekit.data import load_data
from edgekit.recipe import BenchSpec, DataSpec, ModelSpec, Precision, QuantSpec, recipe_from_dict
from edgekit.targets.base import CompileContext, get_target
from edgekit.transforms import get_transform
from edgekit.transforms.binary_attention import hash_fit_losses
from edgekit.transforms.consumers import example_inputs
from edgekit.validate.latency import bench_local
from edgekit.validate.ops_proxy import attention_cost_curve

ROOT = Path(__file__).resolve().parent.parent
VIT = {"hidden_size": 192, "num_attention_heads": 4, "intermediate_size": 384}
VARIANTS = {
    "softmax": [],
    "ecoformer": [{"name": "ecoformer"}],
    "binary-w": [{"name": "binary_weights"}],
}
ALL_TARGETS = [{"name": t, "precisions": ["fp32"]} for t in ("onnx", "openvino", "tflite", "coreml", "tensorrt")]
SWEEP_SIZES = (28, 56, 112, 224)
CURVE_LENGTHS = (49, 196, 784, 3136)


def recipe(name: str, transforms: list, epochs: float, iterations: int) -> dict:
    return {
        "name": name,
        "model": {"source": "vit", "config": dict(VIT)},
        "transforms": transforms,
        "train": {"data": {"source": "fashion-mnist", "split": "train"}, "epochs": epochs, "lr": 0.002},
        "targets": ALL_TARGETS,
        "validation": {"data": {"source": "fashion-mnist", "split": "test"}, "budget": 100.0},
        "benchmark": {"warmup": 20, "iterations": iterations},
    }


def summarize(name: str, rep: dict) -> dict:
    return {
        "run": name,
        "fp32_torch_top1": rep["reference"]["fp32_torch"],
        "parameters": rep["model"]["parameters"],
        "train": {k: rep["train"].get(k) for k in ("steps", "epochs", "final_loss", "seconds")},
        "transforms": rep["transforms"],
        "ops": rep["ops"],
        "rows": [
            {
                "target": r["target"],
                "precision": r["precision"],
                "status": r["status"],
                "size_mb": r.get("size_mb"),
                "top1": (r.get("accuracy") or {}).get("metric"),
                "samples": r.get("samples"),
                "p50_ms": (r.get("latency") or {}).get("p50_ms"),
                "p99_ms": (r.get("latency") or {}).get("p99_ms"),
                "latency_note": r.get("latency_note"),
                "binary_weights": r.get("binary_weights"),
            }
            for r in rep["rows"]
        ],
    }


def hash_fit(run_dir: Path) -> dict:
    """The EcoFormer hash loss on 256 test images: right after the transform (anchors from data, random A)
    vs after training (the run's weights)."""
    bundle = load_model(ModelSpec("vit", dict(VIT)))
    val = load_data(DataSpec("fashion-mnist", "test", samples=256), bundle)
    x = (torch.from_numpy(val.inputs["pixel_values"]),)
    with example_inputs(tuple(t[:8] for t in x)):
        model = get_transform("ecoformer").apply(bundle.module).model
    init = hash_fit_losses(model, x)
    model.load_state_dict(torch.load(run_dir / "model" / "weights.pt", weights_only=True))
    trained = hash_fit_losses(model, x)
    return {"init": init, "trained": trained, "note": "1.0 = codes that know nothing about the attention map"}


def attention_curves() -> dict[str, dict]:
    """Ops proxy of one attention layer vs T, longer than the report's default (counts depend on shapes only)."""
    out = {}
    for name, transforms in VARIANTS.items():
        bundle = load_model(ModelSpec("vit", dict(VIT)))
        model = bundle.module
        with example_inputs(bundle.example_inputs(8, 1)):
            for t in transforms:
                model = get_transform(t["name"]).apply(model, t.get("options", {})).model
        out[name] = attention_cost_curve(model.eval(), CURVE_LENGTHS)
    return out


def sweep(iterations: int) -> list[dict]:
    """Latency vs sequence length: softmax vs EcoFormer at image sizes giving T = 49 .. 3136 patches."""
    out = []
    with tempfile.TemporaryDirectory(prefix="edgekit-binary-sweep-") as tmp:
        work = Path(tmp)
        for size in SWEEP_SIZES:
            tokens = (size // 4) ** 2
            base = load_model(ModelSpec("vit", {**VIT, "image_size": size}))
            for variant in ("softmax", "ecoformer"):
                model = copy.deepcopy(base.module).eval()
                if variant == "ecoformer":
                    with example_inputs(base.example_inputs(2, 1)):
                        model = get_transform("ecoformer").apply(model).model.eval()
                bundle = copy.copy(base)
                bundle.module = model
                ctx = CompileContext(bundle, model, None, None, QuantSpec(), None, work / f"{size}-{variant}")
                ctx.workdir.mkdir(parents=True)
                n = max(10, iterations * 49 // tokens)  # fewer timed runs where one run takes long
                for target in ("onnx", "openvino"):
                    adir = ctx.workdir / target
                    adir.mkdir()
                    get_target(target).export(ctx, Precision.FP32, {}, adir)
                    lat = bench_local(adir, BenchSpec(warmup=max(3, n // 10), iterations=n))
                    row = {"image": size, "tokens": tokens + 1, "variant": variant, "target": target, "iterations": n}
                    row.update({k: lat[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms") if k in lat})
                    print(f"  T={tokens + 1:5d} {variant:9s} {target:8s} p50 {row['p50_ms']:.3f} ms", flush=True)
                    out.append(row)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--runs", default="runs/bench-binary")
    p.add_argument("--skip-train", action="store_true", help="reuse the runs' report.json (sweep only)")
    a = p.parse_args()
    runs = Path(a.runs)
    started = time.time()
    results = []
    for name, transforms in VARIANTS.items():
        if a.skip_train and (runs / name / "report.json").exists():
            rep = json.loads((runs / name / "report.json").read_text())
        else:
            print(f"== {name}", flush=True)
            r = recipe_from_dict(recipe(name, transforms, a.epochs, a.iterations))
            rep = run_recipe(r, runs / name, force=True).report
        results.append(summarize(name, rep))
    fit = hash_fit(runs / "ecoformer")
    print(f"hash fit loss init {fit['init']} -> trained {fit['trained']}", flush=True)
    curves = attention_curves()
    print("== sequence-length sweep", flush=True)
    latency = sweep(a.iterations)
    doc = {
        "benchmark": "binary_compare",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": {"source": "vit", "config": VIT, "image": 28, "patch": 4},
        "latency": {"batch": 1, "threads": 2, "openvino_hint": "f32"},
        "machine_load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "versions": package_versions(),
        "seconds": round(time.time() - started),
        "runs": results,
        "hash_fit": fit,
        "attention_ops_vs_length": curves,
        "latency_vs_length": latency,
    }
    dest = ROOT / "benchmarks" / "results" / "binary.json"
    dest.write_text(json.dumps(doc, indent=1, default=str))
    print(f"\n{'run':10s} {'target':9s} {'top-1':>6s} {'p50 ms':>8s} {'size MB':>8s}  1-bit weights")
    for r in results:
        for row in r["rows"]:
            bw = (row["binary_weights"] or {}).get("mode", "-")
            p50 = f"{row['p50_ms']:.3f}" if row["p50_ms"] else "n/m"
            print(f"{r['run']:10s} {row['target']:9s} {row['top1']:6.2f} {p50:>8s} {row['size_mb']:8.2f}  {bw}")
    print(f"written {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
