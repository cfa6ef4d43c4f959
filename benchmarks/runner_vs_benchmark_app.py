"""Cross-check edgekit's latency harness against OpenVINO's own benchmark_app on the same model and settings.

Both run the same compiled configuration: CPU, PERFORMANCE_HINT=LATENCY, NUM_STREAMS=1, INFERENCE_NUM_THREADS=2,
INFERENCE_PRECISION_HINT=f32, synchronous inference, batch 1, the same (dynamic-batch) IR fed [1, ...] inputs.
benchmark_app gets the config through -load_config (its UI refuses -nthreads/-nstreams together with -hint) and
-data_shape without -shape, so it does not reshape the model to static shapes the runner would not see.
The two are run back to back, alternating which goes first, for several rounds; the comparison is the median over
rounds of our p50 vs benchmark_app's median (parsed by edgekit's own benchmark_app parser). Pass: within 15%.

    python benchmarks/runner_vs_benchmark_app.py [--artifact runs/vit/openvino/fp32 ...] [--rounds 9] [--iterations 500]

With no --artifact, a synthetic MLP IR (built here, ~2 ms at 2 threads) is used.
Writes benchmarks/results/runner_vs_benchmark_app.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.device import parsers, runner
from edgekit.recipe import BenchSpec
from edgekit.validate.latency import bench_local

ROOT = Path(__file__).resolve().parent.parent

THREADS = 2
CONFIG = {
    "CPU": {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(THREADS),
        "INFERENCE_PRECISION_HINT": "f32",
    }
}


def synthetic_artifact(folder: Path, width: int = 1536, layers: int = 6) -> Path:
    """An MLP [batch, 256] -> width x layers -> 10 as an OpenVINO IR in an edgekit artifact directory."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    dims = [256, *[width] * layers, 10]
    inits, nodes, last = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        inits.append(numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]))
        last = f"m{i}"
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    ov.save_model(ov.convert_model(str(folder / "model.onnx")), str(folder / "model.xml"))
    (folder / "model.onnx").unlink()
    meta = {
        "format": "edgekit-artifact/1",
        "target": "openvino",
        "precision": "fp32",
        "runtime": "openvino",
        "file": "model.xml",
        "options": {"inference_precision": "f32"},
        "output": last,
        "inputs": [{"name": "x", "shape": ["batch", 256], "dtype": "float32"}],
    }
    (folder / "artifact.json").write_text(json.dumps(meta))
    return folder


def run_ours(artifact: Path, iterations: int, warmup: int) -> dict:
    """edgekit's own latency path (the runner in a fresh process), exactly as every run's report uses it."""
    return bench_local(artifact, BenchSpec(warmup=warmup, iterations=iterations, threads=THREADS), timeout=600)


def run_benchmark_app(artifact: Path, iterations: int, config: Path) -> tuple[dict, str]:
    meta = runner.read_meta(artifact)
    shapes = ",".join(f"{s['name']}[{','.join(map(str, runner.concrete_shape(s, 1, 64)))}]" for s in meta["inputs"])
    app = Path(sys.executable).parent / "benchmark_app"
    cmd = [str(app), "-m", str(artifact / meta["file"]), "-d", "CPU", "-load_config", str(config), "-api", "sync"]
    cmd += ["-niter", str(iterations), "-data_shape", shapes, "-inference_only", "true"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"benchmark_app failed on {artifact}:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    return parsers.parse(out.stdout + out.stderr, "benchmark_app"), " ".join(cmd)


def compare(artifact: Path, name: str, rounds: int, iterations: int, warmup: int, config: Path) -> dict:
    rows, command = [], ""
    for r in range(rounds):
        if r % 2:  # alternate who goes first, so a load change between the two does not favour one
            theirs, command = run_benchmark_app(artifact, iterations, config)
            ours = run_ours(artifact, iterations, warmup)
        else:
            ours = run_ours(artifact, iterations, warmup)
            theirs, command = run_benchmark_app(artifact, iterations, config)
        rows.append(
            {
                "round": r,
                "runner_p50_ms": ours["p50_ms"],
                "runner_mean_ms": ours["mean_ms"],
                "benchmark_app_median_ms": theirs["p50_ms"],
                "benchmark_app_mean_ms": theirs["mean_ms"],
                "runner_settings": ours["settings"],
            }
        )
        print(f"  {name} round {r}: runner p50 {ours['p50_ms']:.4f} ms, benchmark_app median {theirs['p50_ms']:.4f} ms")
    ours_p50 = statistics.median(x["runner_p50_ms"] for x in rows)
    theirs_p50 = statistics.median(x["benchmark_app_median_ms"] for x in rows)
    ratio = ours_p50 / theirs_p50
    return {
        "model": name,
        "artifact": str(artifact),
        "iterations": iterations,
        "runner_warmup": warmup,
        "benchmark_app_command": command,
        "rounds": rows,
        "runner_p50_ms": ours_p50,
        "benchmark_app_median_ms": theirs_p50,
        "ratio": ratio,
        "within_15pct": abs(ratio - 1) <= 0.15,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifact", action="append", default=[], help="edgekit openvino artifact directory (repeat)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "runner_vs_benchmark_app.json"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps(CONFIG))
        models = [(Path(x), x) for x in a.artifact] or [
            (synthetic_artifact(Path(tmp) / "mlp"), "synthetic MLP 256-1536x6-10")
        ]
        load_before = os.getloadavg()
        results = [compare(art, name, a.rounds, a.iterations, a.warmup, config) for art, name in models]
        load_after = os.getloadavg()
    doc = {
        "what": "edgekit runner p50 vs OpenVINO benchmark_app median, same IR and settings, back to back",
        "settings": {"config": CONFIG["CPU"], "api": "sync", "batch": 1, "rounds": a.rounds},
        "machine": runner.device_info(),
        "load_average_before_after": [load_before, load_after],
        "results": results,
        "all_within_15pct": all(r["within_15pct"] for r in results),
    }
    out = Path(a.out)
    if out.exists():  # a model not re-measured keeps its stored row (the README quotes all of them)
        old = json.loads(out.read_text())
        keep = [r for r in old.get("results", []) if r["model"] not in {x["model"] for x in results}]
        doc["results"] = keep + results
        doc["all_within_15pct"] = all(r["within_15pct"] for r in doc["results"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    for r in results:
        print(
            f"{r['model']}: runner p50 {r['runner_p50_ms']:.4f} ms vs benchmark_app median "
            f"{r['benchmark_app_median_ms']:.4f} ms (ratio {r['ratio']:.3f}, within 15%: {r['within_15pct']})"
        )
    return 0 if all(r["within_15pct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
