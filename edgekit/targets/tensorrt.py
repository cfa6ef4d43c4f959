"""Target ``tensorrt``: a TensorRT-ready ONNX (explicit symmetric Q/DQ from edgekit's encodings) plus an
engine build where TensorRT and an NVIDIA GPU exist.

TensorRT cannot be installed on machines without NVIDIA's package index or a GPU. There, edgekit still
writes the ONNX that TensorRT consumes, checks it against TensorRT's Q/DQ rules, validates its numerics by
running the same Q/DQ graph in ONNX Runtime, writes ``build_engine.sh`` with the exact ``trtexec`` command,
and reports engine latency as "not measured here".
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..checks import require_counts
from ..device import runner
from ..errors import DeviceError, RecipeError, UnsupportedOpError
from ..recipe import Precision, Quantizer, QuantSpec
from .base import TARGETS, Artifact, CompileContext, Target
from .onnx_common import fp32_onnx, qdq_onnx
from .pt2e_lowering import source
from .trt_rules import check_tensorrt_qdq

MAX_BATCH = 32


@dataclass(frozen=True)
class TensorRTOptions:
    """The engine's optimization profile reaches batch ``max_batch``; ``workspace_mb``: its workspace memory pool
    limit (MiB). Both go into build_engine.sh's trtexec command and the engine built here."""

    max_batch: int = MAX_BATCH
    workspace_mb: int = 1024

    def __post_init__(self) -> None:
        require_counts(max_batch=self.max_batch, workspace_mb=self.workspace_mb)


class TensorRTTarget(Target):
    name = "tensorrt"
    quant_profile = "tensorrt"
    runtime = "onnxruntime"  # how the artifact is validated here: the same Q/DQ graph in ONNX Runtime
    module = "onnxruntime"
    extra = "onnx"
    options = TensorRTOptions
    measures_latency = False

    def available(self) -> tuple[bool, str]:
        if engine_buildable():
            return True, "TensorRT and a GPU found: engines are built and timed"
        return True, (
            "TensorRT-ready ONNX, validated in ONNX Runtime; engine build needs tensorrt + an NVIDIA GPU "
            "(not here: build_engine.sh holds the trtexec command)"
        )

    def cannot_express(self, quant: QuantSpec) -> str | None:
        if quant.quantizer is Quantizer.NEURAL_COMPRESSOR:
            return (
                "tensorrt: its Q/DQ placement follows TensorRT's rules (symmetric int8, edgekit's encodings); "
                "neural-compressor's x86 program has asymmetric uint8 activations placed by its own rules"
            )
        return None

    def quant_problem(self, quant: QuantSpec) -> str | None:
        if quant.quantizer is Quantizer.NATIVE:
            return "tensorrt has no native quantizer here; use quantizer: edgekit"
        return None  # edgekit's tensorrt profile is symmetric whatever the recipe says; INC: cannot_express

    def compile(self, ctx: CompileContext, precision: Precision, options: TensorRTOptions, out: Path) -> Artifact:
        art = Artifact(self.name, precision, out, self.runtime, "model.onnx")
        if precision is Precision.INT8:
            problem = self.quant_problem(ctx.quant)
            if problem:
                raise RecipeError(problem)
            shutil.copyfile(qdq_onnx(ctx), out / art.file)
            violations = check_tensorrt_qdq(onnx.load(str(out / art.file)))
            if violations:
                raise UnsupportedOpError(
                    f"tensorrt: the Q/DQ graph breaks TensorRT's rules: {violations[0]} (+{len(violations) - 1} more)"
                )
            art.quantizer = ctx.quant.quantizer.value
            art.notes.append(f"explicit symmetric Q/DQ ({source(ctx.quant)}); TensorRT Q/DQ rules checked")
        else:
            shutil.copyfile(fp32_onnx(ctx), out / art.file)
        cmd = trtexec_command(ctx, precision, options.max_batch, options.workspace_mb)
        (out / "build_engine.sh").write_text(
            "#!/usr/bin/env bash\n# Build and time the engine on the target "
            'machine (TensorRT 10):\nset -e\ncd "$(dirname "$0")"\n' + cmd + "\n"
        )
        art.options["trtexec"] = cmd
        if engine_buildable():
            build_engine(out / art.file, out / "model.plan", precision, ctx, options)
            art.notes.append("engine built with the TensorRT Python API: model.plan")
        else:
            art.notes.append("validated as: the same ONNX graph in ONNX Runtime (CPU), not a TensorRT engine")
            art.notes.append(f"engine not built here (no tensorrt/GPU); on the target run: {cmd}")
        return art


def engine_buildable() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _shapes(ctx: CompileContext, batch: int) -> str:
    parts = []
    for s in ctx.bundle.inputs:
        dims = s.concrete_shape(batch=batch, sequence=128 if batch > 1 else 1)
        parts.append(f"{s.name}:{'x'.join(map(str, dims))}")
    return ",".join(parts)


def trtexec_command(ctx: CompileContext, precision: Precision, max_batch: int, workspace_mb: int) -> str:
    flags = {Precision.FP32: [], Precision.FP16: ["--fp16"], Precision.INT8: ["--int8", "--fp16"]}[precision]
    dynamic = any(s.dynamic_axes for s in ctx.bundle.inputs)
    shapes = (
        [f"--minShapes={_shapes(ctx, 1)}", f"--optShapes={_shapes(ctx, 1)}", f"--maxShapes={_shapes(ctx, max_batch)}"]
        if dynamic
        else []
    )
    args = [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=model.plan",
        *flags,
        *shapes,
        f"--memPoolSize=workspace:{workspace_mb}M",
        "--timingCacheFile=timing.cache",
        "--warmUp=500",
        "--iterations=200",
        "--exportTimes=times.json",
        "--useSpinWait",
    ]
    return " ".join(shlex.quote(a) for a in args)


def build_engine(
    onnx_path: Path, plan_path: Path, precision: Precision, ctx: CompileContext, options: TensorRTOptions
) -> None:  # pragma: no cover - needs TensorRT and an NVIDIA GPU
    """``model.plan`` by the device runner's engine build: a profile over every input from batch 1, sequence 1
    up to ``max_batch``, sequence 128 (optimum batch 1, sequence 64), the recipe's workspace and the timing cache
    next to the plan."""
    import tensorrt as trt

    max_batch = options.max_batch

    def profile(_dynamic: list[str]) -> dict[str, tuple[tuple[int, ...], ...]]:
        return {
            s.name: (
                tuple(s.concrete_shape(batch=1, sequence=1)),
                tuple(s.concrete_shape(batch=1, sequence=64)),
                tuple(s.concrete_shape(batch=max_batch, sequence=128)),
            )
            for s in ctx.bundle.inputs
        }

    logger = trt.Logger(trt.Logger.WARNING)
    workspace = options.workspace_mb
    try:
        engine = runner.build_engine(
            trt, logger, onnx_path, precision.value, profile, workspace, plan_path.with_name("timing.cache")
        )
    except runner.EngineBuildError as exc:
        if exc.parse_error is not None:
            raise UnsupportedOpError(f"tensorrt: ONNX parse failed: {exc.parse_error}") from None
        raise DeviceError("tensorrt: engine build failed (see the TensorRT log above)") from None
    plan_path.write_bytes(engine)


TARGETS.add("tensorrt", TensorRTTarget())
