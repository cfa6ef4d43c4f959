"""Run a recipe stage by stage into one artifact directory with a manifest.

model -> (train) -> transforms -> FP32 reference -> calibrate once -> compile per target/precision
      -> validate each artifact -> benchmark each artifact -> report + manifest
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archs import ModelBundle, load_model
from .artifacts import RunDir, write_manifest
from .checks import require_finite_weights
from .data import DataSet, load_data
from .diagnose import diagnose_failures
from .errors import ModelError, RecipeError
from .evaluate import (
    DEFAULT_BUDGET,
    bench_rows,
    failed_row,
    passed,
    predict_torch,
    resolve_metric,
    status_row,
    validate_artifact,
)
from .isolate import isolated
from .quant import calibrate
from .quant.simulated import Quantized, Simulation
from .recipe import Precision, Quantizer, Recipe, TargetSpec
from .targets.base import CompileContext, Target, all_targets, get_target
from .train.stage import teacher_copy
from .transforms import check_transform, get_transform
from .transforms.apply import apply_transforms, transform_probe
from .validate.metrics import task_metric
from .validate.ops_proxy import ops_summary
from .validate.report import write_reports


@dataclass
class RunResult:
    out: Path
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


@dataclass(frozen=True)
class PlanItem:
    target: Target
    spec: TargetSpec
    implied: bool = False  # expanded from `all`; a named target the model cannot be represented on fails the run


def plan_targets(recipe: Recipe) -> tuple[list[PlanItem], list[dict[str, Any]]]:
    """Resolve target specs; ``all`` expands to every target that can run here (the rest become skipped rows)."""
    plan: list[PlanItem] = []
    skipped: list[dict[str, Any]] = []
    for spec in recipe.targets:
        if spec.name == "all":
            for t in all_targets():
                ok, why = t.available()
                if not ok:
                    skipped += [status_row(t.name, p, "skipped", why) for p in spec.precisions]
                    continue
                precisions = [p for p in spec.precisions if p in t.precisions]
                problem = t.quant_problem(recipe.quantization) if Precision.INT8 in precisions else None
                if problem:
                    skipped.append(status_row(t.name, Precision.INT8, "skipped", problem))
                    precisions.remove(Precision.INT8)
                precisions = _expressible(t, recipe, precisions, skipped, implied=True)
                if precisions:
                    plan.append(PlanItem(t, TargetSpec(t.name, tuple(precisions)), implied=True))
            continue
        target = get_target(spec.name)
        target.check_spec(spec)
        target.require()
        problem = target.quant_problem(recipe.quantization) if Precision.INT8 in spec.precisions else None
        if problem:
            raise RecipeError(problem)
        precisions = _expressible(target, recipe, list(spec.precisions), skipped)
        if precisions:
            plan.append(PlanItem(target, replace(spec, precisions=tuple(precisions))))
    return plan, skipped


def _expressible(
    target: Target, recipe: Recipe, precisions: list[Precision], rows: list[dict[str, Any]], implied: bool = False
):
    """Drop int8 when the target cannot lower the quantizer's program; the run keeps an ``unsupported`` row."""
    why = _cannot_express(target, recipe.quantization) if Precision.INT8 in precisions else None
    if why:
        rows.append(requested(status_row(target.name, Precision.INT8, "unsupported", why), not implied))
        return [p for p in precisions if p is not Precision.INT8]
    return precisions


def _cannot_express(target: Target, quant) -> str | None:
    from .targets.pt2e_lowering import program_refusal

    return target.cannot_express(quant) or program_refusal(target.name, quant)


def resolve_symmetry(recipe: Recipe, plan: list[PlanItem]) -> Recipe:
    """One set of encodings serves every target: unset activation symmetry becomes symmetric exactly when a
    planned int8 target requires it (TensorRT), asymmetric (a finer grid for one-sided ranges) otherwise."""
    q = recipe.quantization
    if q.activation_symmetric is not None or q.quantizer is Quantizer.GRAPH:  # graph: each profile decides
        return recipe
    needed = any(i.target.requires_symmetric_activations and Precision.INT8 in i.spec.precisions for i in plan)
    return recipe.with_(quantization=replace(q, activation_symmetric=needed))


def run_recipe(
    recipe: Recipe,
    out: str | Path,
    force: bool = False,
    progress: bool = True,
    benchmark: bool = True,
    log: Any = print,
    resume: bool = False,
) -> RunResult:
    plan, skipped = plan_targets(recipe)  # fail fast, before any training
    if recipe.quantization.quantizer is Quantizer.NEURAL_COMPRESSOR and Precision.INT8 in recipe.precisions():
        from .quant.inc import require_installed

        require_installed()
    recipe = resolve_symmetry(recipe, plan)
    for t in recipe.transforms:
        check_transform(t.name, dict(t.options))
    with RunDir(Path(out), force) as tmp:
        bundle = load_model(recipe.model, recipe.inputs)
        log(f"model: {recipe.model.source} ({bundle.family}, {bundle.num_parameters:,} parameters)")
        names = [s.name for s in bundle.inputs]
        val_spec = recipe.validation_data()
        val = load_data(val_spec, bundle, "validation")
        metric = resolve_metric(recipe.validation.metric, bundle.task, val)
        budget = recipe.validation.budget if recipe.validation.budget is not None else DEFAULT_BUDGET[metric]
        bs = recipe.validation.batch_size
        predict_torch(bundle.module, names, val.subset(2), 2, progress=False)  # wrong IO spec fails here, fast
        calib = _calibration_data(recipe, bundle)  # bad calibration data fails before any training
        probe = transform_probe(val)
        teacher = teacher_copy(recipe, bundle)
        applied = apply_transforms(recipe, bundle, "train", probe, log)
        if recipe.model.weights:  # after train-phase transforms: the weights were trained with them
            load_weights(bundle, recipe.model.weights)
        train_info = _train(recipe, bundle, names, teacher, tmp, Path(out), resume, val, progress, log)
        del teacher
        applied += apply_transforms(recipe, bundle, "deploy", probe, log)
        fp32_out = predict_torch(bundle.module, names, val, bs, progress=progress)
        fp32_metric = task_metric(metric, fp32_out, fp32_out, val.labels)
        log(f"fp32 pytorch {metric}: {fp32_metric:.4f} on {val.description}")

        quantized = _quantize(
            recipe, bundle, names, calib, tmp, val, progress, (metric, budget), log, graph_profiles(plan)
        )
        primary = quantized.primary
        sim = primary.model if primary else None
        sim_out = primary.outputs if primary else None
        sim_metric = None if sim_out is None else task_metric(metric, sim_out, fp32_out, val.labels)

        ctx = CompileContext(
            bundle,
            bundle.module,
            sim,
            quantized.encodings,
            recipe.quantization,
            calib,
            tmp / ".work",
            recipe_yaml=recipe.to_yaml(),
        )
        ctx.workdir.mkdir()
        contexts = profile_contexts(ctx, quantized)
        rows: list[dict[str, Any]] = []
        for item in plan:
            for precision in item.spec.precisions:
                use, sim_for = ctx, quantized.primary
                if precision is Precision.INT8 and item.target.quant_profile in contexts:
                    use, sim_for = contexts[item.target.quant_profile], quantized.for_target(item.target.quant_profile)
                row = _artifact_row(
                    item, precision, use, tmp, log, val, fp32_out, sim_for, metric, budget, bs, recipe, progress
                )
                rows.append(row)
        shutil.rmtree(ctx.workdir)
        diagnosis = diagnose_failures(tmp, rows, sim, bundle, val, log) if sim is not None else []
        if benchmark:
            bench_rows(tmp, rows, recipe.benchmark, val_spec.max_length, progress)
        rows += skipped

        np.savez_compressed(
            tmp / "reference.npz",
            fp32=fp32_out,
            **({"sim_int8": sim_out} if sim_out is not None else {}),
            **{f"sim_int8_{p}": s.outputs for p, s in quantized.by_profile.items()},
            **({"labels": val.labels} if val.labels is not None else {}),
        )
        (tmp / "recipe.yaml").write_text(recipe.to_yaml())
        report = {
            "recipe": recipe.name,
            "metric": metric,
            "budget": budget,
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
            "validation": {"data": val.description, "samples": len(val), "spec": val_spec.__dict__},
            "reference": {"fp32_torch": fp32_metric, "sim_int8": sim_metric},
            "train": train_info,
            "transforms": applied,
            "ops": ops_summary(bundle.module, bundle.example_inputs(1, val_spec.max_length)),
            "calibration": quantized.info,
            "benchmark": recipe.benchmark.__dict__ if benchmark else None,
            "rows": rows,
        }
        if diagnosis:
            report["diagnosis"] = diagnosis
        save_run(tmp, report, recipe)
    return RunResult(Path(out), report)


def requested(row: dict[str, Any], named: bool) -> dict[str, Any]:
    """Mark the row of a target the recipe names (not one ``all`` implied): ``unsupported`` there fails the run,
    since what was asked for was not built (evaluate.passed)."""
    if named and row["status"] == "unsupported":
        row["requested"] = True
    return row


def _artifact_row(
    item: PlanItem,
    precision: Precision,
    ctx: CompileContext,
    tmp: Path,
    log: Any,
    val: DataSet,
    fp32_out: np.ndarray,
    sim: Simulation | None,
    metric: str,
    budget: float,
    bs: int,
    recipe: Recipe,
    progress: bool,
) -> dict[str, Any]:
    """Compile and validate one artifact; a stage that raises is this artifact's row (edgekit.isolate).
    An INT8 artifact is compared with ``sim``: the simulated program of the target's profile."""
    target = item.target
    sim_out = sim.outputs if sim is not None else None
    adir = tmp / target.name / precision.value
    adir.mkdir(parents=True)
    what = f"{target.name} {precision.value}"
    log(f"compile {what}")
    with isolated("compile", what, remove=adir, log=log) as stage:
        art = target.export(ctx, precision, dict(item.spec.options), adir)
        why = target.cannot_run_here(art)
    if stage.failed:
        return requested(failed_row(target.name, precision, stage), not item.implied)
    where = {"artifact": str(art.path.relative_to(tmp))}
    if why:
        log(f"  {why}")
        return {**status_row(target.name, precision, "skipped", why), **where}
    with isolated("validate", what, log=log) as stage:  # returns its row unless it raised: then the row below
        row = validate_artifact(
            target, art, val, fp32_out, sim_out, metric, budget, bs, recipe.benchmark.threads, progress
        )
        return with_profile(row, sim, precision)
    row = {**failed_row(target.name, precision, stage), **where, "size_mb": art.size_mb}
    return requested(row, not item.implied)


def graph_profiles(plan: list[PlanItem]) -> tuple[str, ...]:
    """The graph quantizer's profiles the planned INT8 targets lower, in plan order, each once."""
    names = [i.target.quant_profile for i in plan if Precision.INT8 in i.spec.precisions]
    return tuple(dict.fromkeys(names))


def profile_contexts(ctx: CompileContext, quantized: Quantized) -> dict[str, CompileContext]:
    """Per profile, the compile context of its program; its own work dir keeps its Q/DQ ONNX apart."""
    out = {}
    for name, sim in quantized.by_profile.items():
        out[name] = replace(ctx, sim=sim.model, encodings=sim.encodings, workdir=ctx.workdir / name, cache={})
        out[name].workdir.mkdir()
    return out


def with_profile(row: dict[str, Any], sim: Simulation | None, precision: Precision) -> dict[str, Any]:
    if precision is Precision.INT8 and sim is not None and sim.profile is not None:
        row["profile"] = sim.profile
        row.setdefault("notes", []).append(f"graph quantizer profile {sim.profile}; compared with its program")
    return row


def save_run(root: Path, report: dict[str, Any], recipe: Recipe) -> None:
    """Write report.json/.md/.html and manifest.json (its results summary included) for a run directory."""
    report["passed"] = passed(report["rows"])
    write_reports(report, root)
    summary = [{k: r.get(k) for k in ("target", "precision", "status", "delta")} for r in report["rows"]]
    write_manifest(
        root, {"recipe": recipe.to_dict(), "io": report["io"], "results": {"passed": report["passed"], "rows": summary}}
    )


def update_run(root: Path, report: dict[str, Any]) -> None:
    """Rewrite a finished run's reports (``edgekit bench DIR``) and record only those files anew in its manifest:
    the artifacts' hashes stay the ones recorded when they were built."""
    from .artifacts import add_to_manifest

    report["passed"] = passed(report["rows"])
    write_reports(report, root)
    add_to_manifest(root, [p for p in sorted(root.glob("report.*")) if p.is_file()] + sorted(root.glob("plots/*")))


def _train(
    recipe: Recipe,
    bundle: ModelBundle,
    names: list[str],
    teacher: torch.nn.Module | None,
    tmp: Path,
    out: Path,
    resume: bool,
    val: DataSet,
    progress: bool,
    log: Any,
) -> dict[str, Any] | None:
    if recipe.train is None:
        return None
    from .train.stage import checkpoint_dir, outlier_sample, run_training

    info = run_training(
        recipe, bundle, names, teacher, tmp / "model", checkpoint_dir(out), resume, outlier_sample(val), progress, log
    )
    hf = getattr(bundle.module, "hf", None)
    if hf is not None and not applied_train_transforms(recipe):
        hf.save_pretrained(tmp / "model")  # an HF checkpoint: `edgekit export RUN/model` works on it
    return info


def applied_train_transforms(recipe: Recipe) -> bool:
    return any(get_transform(t.name).phase == "train" for t in recipe.transforms)


def load_weights(bundle: ModelBundle, path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model.weights '{p}' does not exist (a training run writes RUN/model/weights.pt)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError) as exc:  # torch's own message would suggest weights_only=False
        raise ModelError(
            f"model.weights '{p}' is not a plain state_dict of tensors ({type(exc).__name__}); edgekit loads "
            "weights without running code: save them with torch.save(model.state_dict(), PATH)"
        ) from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"model.weights '{p}' cannot be read as a torch state_dict: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict):
        raise ModelError(f"model.weights '{p}' holds a {type(state).__name__}, not a state_dict (name -> tensor)")
    try:
        bundle.module.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"model.weights '{p}' does not fit this model (same architecture, config and "
            f"train-phase transforms?): {str(exc).splitlines()[0]}"
        ) from None
    require_finite_weights(bundle.module, f"model.weights '{p}'")
    bundle.info["weights"] = str(p.resolve())


def _calibration_data(recipe: Recipe, bundle: ModelBundle) -> DataSet | None:
    if Precision.INT8 not in recipe.precisions():
        return None
    if recipe.quantization.calibration is None:
        raise RecipeError("int8 needs quantization.calibration")
    return load_data(recipe.quantization.calibration, bundle, "calibration")


def _quantize(
    recipe: Recipe,
    bundle: ModelBundle,
    names: list[str],
    calib: DataSet | None,
    tmp: Path,
    val: DataSet,
    progress: bool,
    goal: tuple[str, float],
    log: Any,
    profiles: tuple[str, ...] = (),
) -> Quantized:
    q = recipe.quantization
    if calib is None or q.calibration is None:
        return Quantized()
    info = {
        "data": calib.description,
        "samples": len(calib),
        "estimator": q.estimator.value,
        "quantizer": q.quantizer.value,
        "activation_symmetric": bool(q.activation_symmetric),
        "encodings": 0,
    }
    if q.quantizer is Quantizer.NATIVE:
        return Quantized(info=info)
    if q.quantizer is Quantizer.NEURAL_COMPRESSOR:
        return _inc_quantize(recipe, bundle, names, tmp, val, calib, progress, goal, info, log)
    if q.quantizer is Quantizer.GRAPH:
        return _graph_quantize(recipe, bundle, names, tmp, val, calib, progress, info, profiles, goal, log)
    cal = calibrate(bundle.module, names, calib, q, batch_size=q.calibration.batch_size, progress=progress)
    cal.encodings.meta["data"] = calib.description
    if q.accuracy_aware is not None:
        from .quant.accuracy_aware import accuracy_aware

        cal.encodings, info["accuracy_aware"] = accuracy_aware(q, bundle, names, cal.sim, cal.encodings, goal, log)
    cal.encodings.save(tmp / "encodings.json")
    info["encodings"] = len(cal.encodings)
    if "scale_reparam" in cal.encodings.meta:
        info["scale_reparam"] = cal.encodings.meta["scale_reparam"]
    sim_out = predict_torch(cal.sim, names, val, recipe.validation.batch_size, "simulated int8", progress)
    return Quantized(Simulation(cal.sim, cal.encodings, sim_out), cal.encodings, info)


def _inc_quantize(recipe, bundle, names, tmp, val, calib, progress, goal, info, log):
    """Neural Compressor's PT2E program is the simulated model; its scales are read into encodings.json."""
    from .quant.inc import inc_quantize

    metric, budget = goal
    bs = recipe.validation.batch_size
    ref: list[np.ndarray] = []

    def evaluate(model: torch.nn.Module) -> float:  # autotune's eval_fn: the recipe's metric vs FP32
        if not ref:
            ref.append(predict_torch(bundle.module, names, val, bs, progress=False))
        return task_metric(metric, predict_torch(model, names, val, bs, progress=False), ref[0], val.labels)

    res = inc_quantize(bundle.module, bundle, names, calib, recipe.quantization, evaluate, budget, log)
    res.encodings.save(tmp / "encodings.json")
    info.update(res.info, encodings=len(res.encodings))
    sim_out = predict_torch(res.program, names, val, recipe.validation.batch_size, "neural-compressor int8", progress)
    return Quantized(Simulation(res.program, res.encodings, sim_out), res.encodings, info)


def _graph_quantize(recipe, bundle, names, tmp, val, calib, progress, info, profiles=(), goal=None, log=print):
    """edgekit's graph quantizer: one PT2E program per profile the planned targets lower (their simulated
    models), from one capture; their scales merge into the one encodings.json."""
    from .quant.graph import graph_quantize_profiles, merge_encodings
    from .quant.graph.profiles import DEFAULT_PROFILE, PROFILES

    q = recipe.quantization
    profiles = profiles or (DEFAULT_PROFILE,)
    accuracy = None
    if q.accuracy_aware is not None and goal is not None:
        from .quant.accuracy_aware import ranking_goal
        from .quant.graph.accuracy_aware import RankingGoal

        accuracy = RankingGoal(*ranking_goal(q, bundle, goal), q.accuracy_aware)
    results = graph_quantize_profiles(bundle.module, bundle, names, calib, q, profiles, accuracy, log)
    encodings = merge_encodings(results)
    encodings.save(tmp / "encodings.json")
    bs = recipe.validation.batch_size
    sims = {
        name: Simulation(
            res.program,
            res.encodings,
            predict_torch(res.program, names, val, bs, f"graph int8 ({name})", progress),
            name,
        )
        for name, res in results.items()
    }
    first = results[profiles[0]].info
    info.update({k: v for k, v in first.items() if k not in ("profile", "profile_description", "quantized_ops")})
    info["profiles"] = {
        name: {"description": PROFILES.get(name).description, "quantized_ops": res.info["quantized_ops"]}
        for name, res in results.items()
    }
    info["encodings"] = len(encodings)
    return Quantized(sims[profiles[0]], encodings, info, sims)
