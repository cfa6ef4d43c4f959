#!/usr/bin/env python3
"""Which layers OpenVINO's CPU plugin runs in int8: edgekit's INT8 vs NNCF's, per layer type.

Builds both INT8 OpenVINO artifacts of one model from the same calibration samples, compiles each on the CPU and
counts the runtime model's layers by (layer type, runtimePrecision): an int8 model whose FullyConnected or
Convolution layers report bf16/f32 is not running integer kernels, whatever its file holds. This is the check that
found the weight zero-point Subtract, the float attention and the unfolded pads (README, "OpenVINO after the
runtime-precision fixes"). Results: benchmarks/results/openvino_runtime_precision_<model>.json.

    python benchmarks/openvino_runtime_precision.py --model vit-tiny
    python benchmarks/openvino_runtime_precision.py --model deit-s
    python benchmarks/openvino_runtime_precision.py --model efficientnet-lite1
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from peer_compare import DEIT_S, EDGEKIT_OPTIONS

from edgekit.artifacts import package_versions
from edgekit.pipeline import RunContext, run_stages, stages
from edgekit.quant.graph import graph_quantize_profiles
from edgekit.recipe import DataSpec, ModelSpec, Precision, Quantizer, QuantSpec, Recipe, TargetSpec, ValidationSpec
from edgekit.targets.base import CompileContext, get_target

TINY_VIT = {
    **DEIT_S,
    "image_size": 64,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 256,
    "num_labels": 10,
}
MODELS = {
    "vit-tiny": (ModelSpec("vit", TINY_VIT), DataSpec("fashion-mnist", "train", samples=32), "deit-s"),
    "deit-s": (ModelSpec("vit", DEIT_S), DataSpec("fashion-mnist", "train", samples=32), "deit-s"),
    "efficientnet-lite1": (
        ModelSpec("efficientnet_lite1"),
        DataSpec("photos", "train", samples=10),
        "efficientnet-lite1",
    ),
}
KINDS = ("FullyConnected", "Convolution", "Subgraph", "FakeQuantize", "Pad", "MatMul")


def runtime_layers(xml: Path) -> dict[str, int]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": 1})
    counts: collections.Counter = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        counts[f"{info['layerType'].astype(str)} {info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=list(MODELS))
    p.add_argument("--out", default=None)
    a = p.parse_args()
    model, calib_spec, options_of = MODELS[a.model]
    recipe = Recipe(
        "runtime-precision",
        model,
        targets=(TargetSpec("openvino", (Precision.INT8,)),),
        quantization=QuantSpec(calibration=calib_spec),
        validation=ValidationSpec(DataSpec(calib_spec.source, calib_spec.split, samples=2)),
    )
    ctx = run_stages(RunContext(recipe, Path("."), log=lambda *_: None), stages("load", "calibration-data"))
    bundle, calib = ctx.model(), ctx.calib
    names = [s.name for s in bundle.inputs]
    target = get_target("openvino")
    spec = QuantSpec(
        calibration=DataSpec("given"),
        activation_symmetric=False,
        **EDGEKIT_OPTIONS[options_of],
    )
    programs = graph_quantize_profiles(bundle.module, bundle, names, calib, spec, (target.quant_profile,))
    program = programs[target.quant_profile]
    native = QuantSpec(calibration=DataSpec("given"), quantizer=Quantizer.NATIVE)
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        contexts = {
            "edgekit": CompileContext(
                bundle, bundle.module, program.program, program.encodings, spec, calib, Path(tmp) / "edgekit-work"
            ),
            "nncf": CompileContext(bundle, bundle.module, None, None, native, calib, Path(tmp) / "nncf-work"),
        }
        for label, cctx in contexts.items():
            cctx.workdir.mkdir()
            out = Path(tmp) / label
            out.mkdir()
            art = target.export(cctx, Precision.INT8, {}, out)
            layers = runtime_layers(next(art.path.glob("*.xml")))
            variants[label] = {"total_layers": sum(layers.values()), "layers": layers}
            shown = {k: v for k, v in layers.items() if k.split()[0] in KINDS}
            print(f"{label:6s} {variants[label]['total_layers']} runtime layers; {shown}", flush=True)
    doc = {
        "benchmark": "openvino_runtime_precision",
        "model": a.model,
        "parameters": bundle.num_parameters,
        "calibration": {"data": calib.description, "samples": len(calib)},
        "edgekit_profile": target.quant_profile,
        "variants": variants,
        "versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    out = Path(a.out or Path(__file__).parent / "results" / f"openvino_runtime_precision_{a.model}.json")
    out.write_text(json.dumps(doc, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
