"""A run as a list of named stages over one :class:`~.context.RunContext`.

``run_recipe`` is :data:`STAGES` in order; ``edgekit retrain`` runs its opening stages, ``edgekit diagnose``
rebuilds a run's model with the load and transform stages. A stage is an object with a ``name`` and
``run(ctx)``; it reads what earlier stages set on the context and sets its own fields, so a subset runs the
same code as the whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..archs import load_model
from ..data import DataSet, load_data
from ..data.predict import predict_torch
from ..device.runner import read_meta
from ..errors import ModelError
from ..evaluate import bench_rows, resolve_metric
from ..metrics import DEFAULT_BUDGET, task_metric
from ..quant.simulated import Quantized
from ..status import Status
from ..targets.base import CompileContext, layer_probes
from ..train.stage import checkpoint_dir, outlier_sample, run_training, teacher_copy
from ..transforms import get_transform
from ..transforms.apply import apply_transforms, transform_probe
from ..validate.divergence import divergence
from ..validate.ops_proxy import ops_summary
from ..validate.run_report import REPORT_SCHEMA
from .context import Built, RunContext
from .plan import graph_profiles
from .quantize import calibration_data, quantize
from .rows import compile_contexts, compile_one, validate_one
from .rundir import load_weights, save_run

DIAGNOSE_SAMPLES = 8  # validation samples a failing row's per-node divergence is measured on


class Stage(Protocol):
    name: str

    def run(self, ctx: RunContext) -> None: ...


@dataclass(frozen=True)
class Load:
    """The model, its validation data, metric and budget; a wrong IO spec fails here, on two samples."""

    name: str = "load"

    def run(self, ctx: RunContext) -> None:
        recipe = ctx.recipe
        bundle = load_model(recipe.model, recipe.inputs)
        ctx.log(f"model: {recipe.model.source} ({bundle.family}, {bundle.num_parameters:,} parameters)")
        ctx.bundle, ctx.names = bundle, [s.name for s in bundle.inputs]
        ctx.val_spec = recipe.validation_data()
        ctx.val = load_data(ctx.val_spec, bundle, "validation")
        ctx.metric = resolve_metric(recipe.validation.metric, bundle.task, ctx.val)
        budget = recipe.validation.budget
        ctx.budget = budget if budget is not None else DEFAULT_BUDGET[ctx.metric]
        predict_torch(bundle.module, ctx.names, ctx.val.subset(2), 2, progress=False)
        ctx.probe = transform_probe(ctx.val)
        ctx.teacher = teacher_copy(recipe, bundle)  # before any train-phase transform


@dataclass(frozen=True)
class CalibrationData:
    """INT8's calibration set, loaded before training so bad calibration data fails in seconds, not hours."""

    name: str = "calibration-data"

    def run(self, ctx: RunContext) -> None:
        ctx.calib = calibration_data(ctx.recipe, ctx.model())


@dataclass(frozen=True)
class Transforms:
    """The recipe's transforms of one phase (``train``: before training; ``deploy``: folded after it)."""

    phase: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or f"{self.phase}-transforms")

    def run(self, ctx: RunContext) -> None:
        bundle = ctx.model()
        ctx.applied += apply_transforms(ctx.recipe, bundle, self.phase, ctx.probe, ctx.log)
        if self.phase == "train" and ctx.recipe.model.weights:  # trained with the train-phase transforms
            load_weights(bundle, ctx.recipe.model.weights)


@dataclass(frozen=True)
class Train:
    """The recipe's ``train:`` section (distillation from the teacher when asked); weights into TMP/model."""

    name: str = "train"

    def run(self, ctx: RunContext) -> None:
        recipe, bundle = ctx.recipe, ctx.model()
        if recipe.train is not None:
            tmp = ctx.workdir()
            ctx.train_info = run_training(
                recipe,
                bundle,
                ctx.names,
                ctx.teacher,
                tmp / "model",
                checkpoint_dir(ctx.out),
                ctx.resume,
                outlier_sample(ctx.val),
                ctx.progress,
                ctx.log,
            )
            hf = getattr(bundle.module, "hf", None)
            if hf is not None and not any(get_transform(t.name).phase == "train" for t in recipe.transforms):
                hf.save_pretrained(tmp / "model")  # an HF checkpoint: `edgekit export RUN/model` works on it
        ctx.teacher = None


@dataclass(frozen=True)
class Reference:
    """FP32 PyTorch outputs on the validation set: what every artifact is compared with."""

    name: str = "reference"

    def run(self, ctx: RunContext) -> None:
        bundle, val = ctx.model(), ctx.val
        ctx.fp32_out = predict_torch(bundle.module, ctx.names, val, ctx.batch_size, progress=ctx.progress)
        ctx.fp32_metric = task_metric(ctx.metric, ctx.fp32_out, ctx.fp32_out, val.labels)
        ctx.log(f"fp32 pytorch {ctx.metric}: {ctx.fp32_metric:.4f} on {val.description}")


@dataclass(frozen=True)
class Quantize:
    """Calibrate once: the simulated INT8 program(s) and the one encodings.json every target lowers. A model that
    cannot be captured has no INT8 program: its INT8 rows are ``unsupported`` with the reason, the rest builds."""

    name: str = "quantize"

    def run(self, ctx: RunContext) -> None:
        bundle, val = ctx.model(), ctx.val
        goal = (ctx.metric, ctx.budget)
        try:
            ctx.quantized = quantize(
                ctx.recipe,
                bundle,
                ctx.names,
                ctx.calib,
                ctx.workdir(),
                val,
                ctx.progress,
                goal,
                ctx.log,
                graph_profiles(ctx.plan),
            )
        except ModelError as exc:  # the model cannot be captured: no INT8 program, the FP32 artifacts still build
            ctx.log(f"int8: {exc}")
            ctx.quantized = Quantized(failure=str(exc))
            return
        primary = ctx.quantized.primary
        if primary is not None and primary.outputs is not None:
            ctx.sim_metric = task_metric(ctx.metric, primary.outputs, ctx.fp32_out, val.labels)


@dataclass(frozen=True)
class Compile:
    """Every planned target and precision into TMP/TARGET/PRECISION; a failure is that artifact's row."""

    name: str = "compile"

    def run(self, ctx: RunContext) -> None:
        bundle, tmp, q = ctx.model(), ctx.workdir(), ctx.quantized
        primary = q.primary.model if q.primary else None
        base = CompileContext(
            bundle,
            bundle.module,
            primary,
            q.encodings,
            ctx.recipe.quantization,
            ctx.calib,
            tmp / ".work",
            recipe_yaml=ctx.recipe.to_yaml(),
        )
        base.workdir.mkdir()
        ctx.built = [compile_one(ctx, *job) for job in compile_contexts(base, q, ctx.plan)]
        shutil.rmtree(base.workdir)


@dataclass(frozen=True)
class Validate:
    """Each compiled artifact against FP32 (and INT8 against its profile's simulated program)."""

    name: str = "validate"

    def run(self, ctx: RunContext) -> None:
        ctx.rows = [validate_one(ctx, b) if isinstance(b, Built) else b for b in ctx.built]


@dataclass(frozen=True)
class Diagnose:
    """For each INT8 row over budget whose runtime exposes intermediate outputs, the per-node divergence from its
    profile's program on the first :data:`DIAGNOSE_SAMPLES` validation samples; a failing row whose runtime cannot
    gets a note naming one that can."""

    name: str = "diagnose"

    def run(self, ctx: RunContext) -> None:
        if ctx.quantized.primary is None:
            return
        ctx.model()  # the load stage has run
        val, tmp = ctx.val, ctx.workdir()
        for r in ctx.rows:
            if r.get("status") != Status.FAIL or r.get("precision") != "int8" or r.get("quantizer") in (None, "native"):
                continue
            art = tmp / r["artifact"]
            meta = read_meta(art)
            probes = layer_probes()  # runtime -> the target that exposes its layer outputs
            if meta["runtime"] not in probes:
                r["notes"].append(
                    "per-node divergence needs a runtime that exposes intermediate outputs "
                    f"({', '.join(probes.names())}); see the onnx/openvino rows' diagnosis, or "
                    "`edgekit diagnose RUN --target onnx`"
                )
                continue
            sim = ctx.quantized.for_target(r.get("profile") or "")
            data = first_samples(val, DIAGNOSE_SAMPLES)
            result = divergence(art, meta, sim.model, ctx.names, data)
            ctx.log(f"diagnose {r['target']} int8: {result['verdict']}")
            r["notes"].append(f"per-node divergence: {result['verdict']}")
            ctx.diagnosis.append(result)


@dataclass(frozen=True)
class Bench:
    """Latency of every built artifact here (benchmark_app-style percentiles after warm-up)."""

    name: str = "bench"

    def run(self, ctx: RunContext) -> None:
        if ctx.benchmark:
            bench_rows(ctx.workdir(), ctx.rows, ctx.recipe.benchmark, ctx.val_spec.max_length, ctx.progress)


@dataclass(frozen=True)
class Report:
    """reference.npz, the resolved recipe.yaml, report.json/.md/.html and the manifest."""

    name: str = "report"

    def run(self, ctx: RunContext) -> None:
        recipe, bundle, val, tmp, q = ctx.recipe, ctx.model(), ctx.val, ctx.workdir(), ctx.quantized
        ctx.rows += ctx.skipped
        sim_out = q.primary.outputs if q.primary else None
        np.savez_compressed(
            tmp / "reference.npz",
            fp32=ctx.fp32_out,
            **({"sim_int8": sim_out} if sim_out is not None else {}),
            **{f"sim_int8_{p}": s.outputs for p, s in q.by_profile.items()},
            **({"labels": val.labels} if val.labels is not None else {}),
        )
        (tmp / "recipe.yaml").write_text(recipe.to_yaml())
        ctx.report = {
            "schema": REPORT_SCHEMA,
            "recipe": recipe.name,
            "metric": ctx.metric,
            "budget": ctx.budget,
            "model": {
                "source": recipe.model.source,
                "family": bundle.family,
                "task": bundle.task,
                "parameters": bundle.num_parameters,
                **bundle.info,
            },
            "io": {
                "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in bundle.inputs],
                "output": bundle.output_name,
                "tokenizer_dir": bundle.tokenizer_dir,
            },
            "validation": {"data": val.description, "samples": len(val), "spec": ctx.val_spec.__dict__},
            "reference": {"fp32_torch": ctx.fp32_metric, "sim_int8": ctx.sim_metric},
            "train": ctx.train_info,
            "transforms": ctx.applied,
            "ops": ops_summary(bundle.module, bundle.example_inputs(1, ctx.val_spec.max_length)),
            "calibration": q.info,
            "benchmark": recipe.benchmark.__dict__ if ctx.benchmark else None,
            "rows": ctx.rows,
        }
        if ctx.diagnosis:
            ctx.report["diagnosis"] = ctx.diagnosis
        save_run(tmp, ctx.report, recipe)


STAGES: tuple[Stage, ...] = (
    Load(),
    CalibrationData(),
    Transforms("train"),
    Train(),
    Transforms("deploy"),
    Reference(),
    Quantize(),
    Compile(),
    Validate(),
    Diagnose(),
    Bench(),
    Report(),
)


def stages(*names: str) -> tuple[Stage, ...]:
    """The named stages of :data:`STAGES`, in run order (``stages("load", "train-transforms")``)."""
    by_name = {s.name: s for s in STAGES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown stage(s) {unknown}; the stages are {list(by_name)}")
    return tuple(s for s in STAGES if s.name in names)


def run_stages(ctx: RunContext, todo: Iterable[Stage] = STAGES) -> RunContext:
    for stage in todo:
        stage.run(ctx)
    return ctx


def first_samples(val: DataSet, n: int) -> DataSet:
    n = min(len(val), n)
    return DataSet(
        {k: v[:n] for k, v in val.inputs.items()}, None if val.labels is None else val.labels[:n], val.description
    )
