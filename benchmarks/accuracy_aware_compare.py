#!/usr/bin/env python3
"""Accuracy-aware quantization: edgekit (quantization.accuracy_aware) vs NNCF's quantize_with_accuracy_control.

The model is all-MiniLM-L6-v2 (real weights, 22.7M parameters) under a budget that plain INT8 misses for both
quantizers: a mean-cosine drop of at most ``--max-drop`` (default 0.002) against the FP32 embeddings. Both sides
get the same data: 128 calibration sentences (uncertainty-conll2010 train part), the same 300 other train-part
sentences to rank layers and check the budget, and report the cosine on the 600 held-out test sentences (64
tokens), so the budget is checked on data the algorithms never saw. Every model is then an OpenVINO IR measured by
edgekit's runner (its own process, f32 hint, batch 1, 2 threads).

* edgekit: ``edgekit run`` of the same recipe without / with ``accuracy_aware`` (drop-one and one-at-a-time);
  run directories under ``--runs``; the layers kept in FP32 are those the report lists;
* NNCF 3.4: ``nncf.quantize`` (plain, model_type=TRANSFORMER) and ``nncf.quantize_with_accuracy_control`` with the
  same ``max_drop`` (absolute) and a validation function returning the mean cosine (and the per-sample values NNCF
  uses to rank); the layers it reverted = quantized MatMul/Conv inputs in the plain model that are float in its
  result;
* Intel Neural Compressor 3.10 (``quantizer: neural-compressor``): ``autotune`` over edgekit's ordered set of INC
  static configs (see edgekit.quant.inc), with the same 128 calibration sentences, ``eval_fn`` = mean cosine on
  the same 300 ranking sentences and the same absolute ``max_drop`` (INC's tolerable loss is relative to the FP32
  value, 1.0 here, so it is the same number); its program is lowered by edgekit to the Q/DQ ONNX read by
  OpenVINO, measured like the others. INC's PT2E path has no per-layer fallback search of its own here: its
  tuning space for static INT8 is one config, so the trials are the configs edgekit lists.

Results: benchmarks/results/accuracy_aware_minilm.json.

    python benchmarks/accuracy_aware_compare.py [--max-drop 0.002] [--runs runs/bench-aa] [--methods drop-one]
    python benchmarks/accuracy_aware_compare.py --inc-only   # add/refresh only the Neural Compressor rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from edgekit import run_recipe
from edgekit.archs import load_model
from edgekit.artifacts import package_versions
from edgekit.data import load_data
from edgekit.data.predict import predict_torch
from edgekit.evaluate import predict_artifact
from edgekit.metrics import cosine
from edgekit.recipe import BenchSpec, DataSpec, IncSpec, ModelSpec, Precision, Quantizer, QuantSpec, recipe_from_dict
from edgekit.targets.base import Artifact, CompileContext, get_target
from edgekit.validate.latency import bench_local

ROOT = Path(__file__).resolve().parent.parent
TEXT = {"source": "text", "max_length": 64}
CALIB = {**TEXT, "split": "uncertainty-conll2010/train", "samples": 128}
RANK = {**TEXT, "split": "uncertainty-conll2010/train", "samples": 300, "seed": 1}
TEST = {**TEXT, "split": "uncertainty-conll2010/test"}
F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
BENCH = BenchSpec(warmup=20, iterations=200, threads=2, batch_size=1)


def edgekit_recipe(name: str, max_drop: float, method: str | None) -> dict:
    quant: dict = {"calibration": CALIB}
    if method:
        quant["accuracy_aware"] = {"max_drop": max_drop, "method": method, "max_layers": 30, "data": RANK}
    return {
        "name": name,
        "model": {"source": "minilm"},
        "quantization": quant,
        "targets": [{"name": "openvino", "precisions": ["fp32", "int8"]}],
        "validation": {"data": TEST, "budget": max_drop},
        "benchmark": BENCH.__dict__,
    }


def run_edgekit(runs: Path, max_drop: float, methods: list[str]) -> dict:
    out = {}
    for key, method in (("plain", None), *((m, m) for m in methods)):
        start = time.perf_counter()
        res = run_recipe(recipe_from_dict(edgekit_recipe(f"aa-{key}", max_drop, method)), runs / key, force=True)
        row = next(r for r in res.report["rows"] if r["precision"] == "int8")
        aa = res.report["calibration"].get("accuracy_aware") or {}
        out[key] = latency_of(runs / key) | {
            "run": str(runs / key),
            "test_cosine": row["accuracy"]["metric"],
            "test_drop": -row["delta"],
            "within_budget_on_test": row["within_budget"],
            "layers_reverted": aa.get("kept_fp32", []),
            "n_reverted": len(aa.get("kept_fp32", [])),
            "ranking_drop_before": aa.get("drop_before"),
            "ranking_drop_after": aa.get("drop_after"),
            "evaluations": aa.get("evaluations"),
            "aa_seconds": aa.get("seconds"),
            "run_seconds": time.perf_counter() - start,
        }
        print(key, json.dumps(out[key], default=str)[:400], flush=True)
    return out


def latency_of(run: Path) -> dict:
    """INT8 size and p50, and FP32 p50, from a run's report.json as it is now (``edgekit bench RUN`` re-measures
    a run's latency; --skip-edgekit reads them again after that)."""
    rows = json.loads((run / "report.json").read_text())["rows"]
    int8 = next(r for r in rows if r["precision"] == "int8")
    fp32 = next(r for r in rows if r["precision"] == "fp32")
    return {"size_mb": int8["size_mb"], "p50_ms": int8["latency"]["p50_ms"], "fp32_p50_ms": fp32["latency"]["p50_ms"]}


def quantized_matmuls(model) -> set[str]:
    """Names of MatMul/Convolution ops with a FakeQuantize on a data (non-constant) input."""
    names = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Convolution"):
            continue
        for inp in op.inputs():
            src = inp.get_source_output().get_node()
            if (
                src.get_type_name() == "FakeQuantize"
                and src.input(0).get_source_output().get_node().get_type_name() != "Constant"
            ):
                names.add(op.get_friendly_name())
    return names


def run_nncf(max_drop: float, workdir: Path, smooth_quant: bool) -> dict:
    """NNCF plain and with accuracy control, at its defaults or with SmoothQuant off (matmul alpha -1) for both.
    Both are reported because at the defaults every layer accuracy control reverted on this model made the drop
    larger, not smaller, and it gave up (the JSON has the numbers)."""
    import nncf
    import openvino as ov

    from edgekit.targets.onnx_export import export_onnx

    bundle = load_model(ModelSpec("minilm"))
    names = [s.name for s in bundle.inputs]
    calib = load_data(DataSpec(**CALIB), bundle, "calibration")
    rank = load_data(DataSpec(**RANK), bundle, "ranking")
    test = load_data(DataSpec(**TEST), bundle, "validation")
    ref_rank = predict_torch(bundle.module, names, rank, 100, progress=False)
    ref_test = predict_torch(bundle.module, names, test, 100, progress=False)
    export_onnx(bundle.module, bundle, workdir / "fp32.onnx")
    fp32 = ov.convert_model(str(workdir / "fp32.onnx"))

    def items(ds):
        return [({n: ds.inputs[n][i : i + 1] for n in names}, i) for i in range(len(ds))]

    calib_ds = nncf.Dataset(items(calib), lambda it: it[0])
    rank_ds = nncf.Dataset(items(rank), lambda it: it[0])

    def validate(compiled, data) -> tuple[float, list[float]]:
        per = []
        for feeds, i in data:
            out = np.asarray(compiled(feeds)[0], dtype=np.float32)
            per.append(cosine(out, ref_rank[i : i + 1]))
        return float(np.mean(per)), per

    def test_cosine(model) -> float:
        compiled = ov.Core().compile_model(model, "CPU", F32)
        outs = [np.asarray(compiled({n: test.inputs[n][i : i + 1] for n in names})[0]) for i in range(len(test))]
        return cosine(np.concatenate(outs), ref_test)

    out = {}
    advanced = (
        None
        if smooth_quant
        else nncf.AdvancedQuantizationParameters(smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1))
    )
    suffix = "" if smooth_quant else " (SmoothQuant off)"
    start = time.perf_counter()
    plain = nncf.quantize(
        fp32,
        calib_ds,
        subset_size=len(calib),
        model_type=nncf.ModelType.TRANSFORMER,
        advanced_parameters=advanced,
    )
    t_plain = time.perf_counter() - start
    start = time.perf_counter()
    controlled = nncf.quantize_with_accuracy_control(
        fp32,
        calib_ds,
        rank_ds,
        validate,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
        model_type=nncf.ModelType.TRANSFORMER,
        advanced_quantization_parameters=advanced,
    )
    t_ac = time.perf_counter() - start
    q_plain = quantized_matmuls(plain)
    for key, model, seconds in (
        ("nncf plain" + suffix, plain, t_plain),
        ("nncf accuracy control" + suffix, controlled, t_ac),
    ):
        d = workdir / key.replace(" ", "_").replace("(", "").replace(")", "")
        d.mkdir()
        ov.save_model(model, str(d / "model.xml"), compress_to_fp16=False)
        art = Artifact(
            "openvino", Precision.INT8, d, "openvino", "model.xml", "native", [], {"inference_precision": "f32"}
        )
        art.write_meta(bundle)
        lat = bench_local(d, BENCH, 64)
        c = test_cosine(model)
        reverted = sorted(q_plain - quantized_matmuls(model))
        out[key] = {
            "test_cosine": c,
            "test_drop": 1.0 - c,
            "within_budget_on_test": 1.0 - c <= max_drop,
            "ranking_cosine": validate(
                ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), items(rank)
            )[0],
            "layers_reverted": reverted,
            "n_reverted": len(reverted),
            "quantized_matmuls": len(quantized_matmuls(model)),
            "seconds": seconds,
            "size_mb": art.size_mb,
            "p50_ms": lat["p50_ms"],
        }
        print(key, json.dumps(out[key], default=str)[:400], flush=True)
    return out


def run_inc(max_drop: float, workdir: Path, max_trials: int) -> dict:
    """INC autotune (same calibration, ranking/budget and test data as the others), lowered to OpenVINO."""
    from edgekit.quant.inc import inc_quantize

    bundle = load_model(ModelSpec("minilm"))
    names = [s.name for s in bundle.inputs]
    calib = load_data(DataSpec(**CALIB), bundle, "calibration")
    rank = load_data(DataSpec(**RANK), bundle, "ranking")
    test = load_data(DataSpec(**TEST), bundle, "validation")
    ref_rank = predict_torch(bundle.module, names, rank, 100, progress=False)
    ref_test = predict_torch(bundle.module, names, test, 100, progress=False)

    def ranking_cosine(model) -> float:
        return cosine(predict_torch(model, names, rank, 100, progress=False), ref_rank)

    q = QuantSpec(
        calibration=DataSpec(**CALIB),
        quantizer=Quantizer.NEURAL_COMPRESSOR,
        inc=IncSpec(autotune=True, max_trials=max_trials),
    )
    start = time.perf_counter()
    res = inc_quantize(bundle.module, bundle, names, calib, q, ranking_cosine, max_drop)
    seconds = time.perf_counter() - start
    ctx = CompileContext(bundle, bundle.module, res.program, res.encodings, q, calib, workdir / "work")
    ctx.workdir.mkdir()
    d = workdir / "inc"
    d.mkdir()
    target = get_target("openvino")
    art = target.export(ctx, Precision.INT8, {}, d)
    c = cosine(predict_artifact(target, art, test, 100, 2), ref_test)
    lat = bench_local(d, BENCH, 64)
    row = {
        "test_cosine": c,
        "test_drop": 1.0 - c,
        "within_budget_on_test": 1.0 - c <= max_drop,
        "chosen_config": res.info["config"],
        "autotune": res.info["autotune"],
        "encodings": len(res.encodings),
        "seconds": seconds,
        "size_mb": art.size_mb,
        "p50_ms": lat["p50_ms"],
    }
    print("neural-compressor autotune", json.dumps(row, default=str)[:400], flush=True)
    return {"neural-compressor autotune": row}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-drop", type=float, default=0.002)
    p.add_argument("--runs", default="runs/bench-aa")
    p.add_argument("--skip-edgekit", action="store_true", help="reuse the edgekit results stored in the JSON")
    p.add_argument(
        "--nncf",
        choices=["both", "smoothquant-on", "smoothquant-off"],
        default="both",
        help="NNCF settings to run: its defaults (SmoothQuant on), SmoothQuant off, or both",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["drop-one", "one-at-a-time"],
        choices=["drop-one", "one-at-a-time"],
        help="edgekit ranking methods to run (each is one full edgekit run)",
    )
    p.add_argument("--inc-only", action="store_true", help="run only INC autotune; keep the stored other results")
    p.add_argument("--inc-trials", type=int, default=4, help="INC autotune max_trials")
    a = p.parse_args()
    result = {
        "model": "all-MiniLM-L6-v2 (real weights)",
        "metric": "mean cosine to FP32 embeddings; drop = 1 - cosine",
        "max_drop": a.max_drop,
        "data": {"calibration": CALIB, "ranking_and_budget": RANK, "test": TEST},
        "benchmark": BENCH.__dict__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": package_versions(),
    }
    dest = ROOT / "benchmarks" / "results" / "accuracy_aware_minilm.json"
    stored = json.loads(dest.read_text()) if dest.exists() else {}
    if a.inc_only:
        with tempfile.TemporaryDirectory() as tmp:
            stored["neural_compressor"] = run_inc(a.max_drop, Path(tmp), a.inc_trials)
        stored.setdefault("commands", [stored.get("command")]).append(result["command"])
        stored["neural_compressor_versions"] = result["versions"]
        dest.write_text(json.dumps(stored, indent=1, default=str))
        print(f"written {dest}")
        return 0
    if a.skip_edgekit:
        if "edgekit" not in stored:
            raise SystemExit(f"--skip-edgekit needs the edgekit results already in {dest}")
        result["edgekit"] = {k: v | latency_of(Path(v["run"])) for k, v in stored["edgekit"].items()}
    else:
        result["edgekit"] = run_edgekit(ROOT / a.runs, a.max_drop, a.methods)
    result["nncf"] = dict(stored.get("nncf", {}))  # a setting not re-run keeps its stored numbers
    for smooth_quant in (True, False) if a.nncf == "both" else (a.nncf == "smoothquant-on",):
        with tempfile.TemporaryDirectory() as tmp:
            result["nncf"].update(run_nncf(a.max_drop, Path(tmp), smooth_quant))
    with tempfile.TemporaryDirectory() as tmp:
        result["neural_compressor"] = run_inc(a.max_drop, Path(tmp), a.inc_trials)
    dest.write_text(json.dumps(result, indent=1, default=str))
    print(f"written {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
