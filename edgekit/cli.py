"""The ``edgekit`` command. Errors print one line and exit 2; a failed accuracy budget exits 1."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import EdgekitError, RecipeError

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def _kv(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RecipeError(f"--config expects key=value, got '{item}'")
        out[key] = yaml.safe_load(value)
    return out


def _input_spec(text: str) -> dict[str, Any]:
    """``name:batch,3,32,32[:dtype]`` -> a TensorSpec mapping."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise RecipeError(f"--input expects name:dim,dim,...[:dtype], got '{text}'")
    dims = [int(d) if d.isdigit() else d for d in parts[1].split(",")]
    return {"name": parts[0], "shape": dims, **({"dtype": parts[2]} if len(parts) == 3 else {})}


def build_export_recipe(a: argparse.Namespace) -> Any:
    from .recipe import load_recipe, recipe_from_dict

    base = load_recipe(a.recipe).to_dict() if a.recipe else {"name": Path(a.model.rstrip("/")).name}
    model = dict(base.get("model") or {})
    model["source"] = a.model
    if a.config:
        model["config"] = {**model.get("config", {}), **_kv(a.config)}
    if a.weights:
        model["weights"] = a.weights
    base["model"] = model
    precisions = a.precision.split(",")
    names = [t for arg in a.target for t in arg.split(",")]
    options = {t["name"]: t.get("options", {}) for t in base.get("targets", [])}
    base["targets"] = [{"name": n, "precisions": precisions, "options": options.get(n, {})} for n in names]
    if a.input:
        base["inputs"] = [_input_spec(s) for s in a.input]
    quant = dict(base.get("quantization") or {})
    if a.calib:
        quant["calibration"] = _data(a.calib, a.calib_samples)
    for key in ("estimator", "quantizer"):
        if getattr(a, key):
            quant[key] = getattr(a, key)
    base["quantization"] = quant
    if a.val:
        base["validation"] = {**(base.get("validation") or {}), "data": _data(a.val, a.val_samples)}
    _bench_overrides(base, a)
    return recipe_from_dict(base, "command line")


def _data(text: str, samples: int | None) -> dict[str, Any]:
    from .config import to_dict
    from .recipe import DataSpec

    return to_dict(DataSpec.parse(text, **({"samples": samples} if samples else {})))


def _bench_overrides(base: dict[str, Any], a: argparse.Namespace) -> None:
    bench = dict(base.get("benchmark") or {})
    for key in ("iterations", "warmup", "threads"):
        if getattr(a, key, None) is not None:
            bench[key] = getattr(a, key)
    base["benchmark"] = bench


def _finish(result: Any) -> int:
    from .validate.report import summary_lines, text_table

    print()
    print("\n".join(summary_lines(result.report)))
    print()
    print(text_table(result.report))
    print(f"\nartifacts and report: {result.out}/ (report.md, report.html, manifest.json)")
    return 0 if result.passed else 1


def cmd_export(a: argparse.Namespace) -> int:
    from .pipeline import run_recipe

    recipe = build_export_recipe(a)
    out = a.out or f"runs/{recipe.name}"
    return _finish(run_recipe(recipe, out, force=a.force, progress=not a.quiet, benchmark=not a.no_bench))


def cmd_run(a: argparse.Namespace) -> int:
    from .pipeline import run_recipe
    from .recipe import load_recipe, recipe_from_dict

    recipe = load_recipe(a.recipe)
    if a.reduced:
        from .reduced import reduce_recipe

        recipe = reduce_recipe(recipe)
    if a.iterations is not None or a.warmup is not None or a.threads is not None:
        d = recipe.to_dict()
        _bench_overrides(d, a)
        recipe = recipe_from_dict(d, str(a.recipe))
    out = a.out or f"runs/{recipe.name}"
    return _finish(
        run_recipe(recipe, out, force=a.force, progress=not a.quiet, benchmark=not a.no_bench, resume=a.resume)
    )


def cmd_retrain(a: argparse.Namespace) -> int:
    from .recipe import load_recipe, recipe_from_dict
    from .train.retrain import retrain

    recipe = load_recipe(a.recipe)
    if a.steps is not None:
        d = recipe.to_dict()
        if d.get("train") is None:
            raise RecipeError(f"{a.recipe}: no train: section to override with --steps")
        d["train"]["steps"] = a.steps
        recipe = recipe_from_dict(d, str(a.recipe))
    retrain(recipe, a.out or f"runs/{recipe.name}-retrain", force=a.force, resume=a.resume, progress=not a.quiet)
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    from .rerun import revalidate

    return _finish(revalidate(Path(a.dir), progress=not a.quiet))


def cmd_bench(a: argparse.Namespace) -> int:
    if not a.device:
        if a.time or a.accuracy_samples or a.benchmark_binary or a.out:
            raise RecipeError(
                "--time, --accuracy-samples, --benchmark-binary and --out go with --device (e.g. --device local)"
            )
        from .rerun import rebench

        return _finish(rebench(Path(a.dir), a.iterations, a.warmup, a.threads, progress=not a.quiet))
    from .device.bench import bench_devices
    from .device.transports import BenchOptions

    given = {k: getattr(a, k) for k in ("iterations", "warmup", "threads") if getattr(a, k) is not None}
    opts = BenchOptions(**given, time_s=a.time, benchmark_binary=a.benchmark_binary)
    out = Path(a.out) if a.out else Path(a.dir) / "devices"
    report = bench_devices(Path(a.dir), a.device, opts, out, a.accuracy_samples)
    return _print_device_report(report, out)


def _print_device_report(report: dict[str, Any], out: Path) -> int:
    from .validate.device_report import markdown

    print()
    print(markdown(report))
    print(f"device report: {out}/ (report.md, report.html, report.json, plots/)")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .artifacts import RunDir
    from .device import parsers
    from .validate import device_report

    if not a.runs and not a.ingest:
        raise RecipeError("edgekit report needs run directories and/or --ingest FILE (benchmark tool output)")
    entries = []
    names = [Path(r).resolve().name for r in a.runs]
    for run, name in zip(map(Path, a.runs), names):
        if not run.is_dir():
            raise RecipeError(f"'{run}' is not a directory; pass edgekit run directories (or --ingest FILE)")
        # several runs: their artifacts are told apart by the run's name (its path when names repeat)
        prefix = "" if len(a.runs) < 2 else (name if names.count(name) == 1 else str(run)) + "/"
        entries += device_report.run_entries(run, prefix)
    entries += [device_report.ingested_entry(parsers.ingest(f, a.tool), a.device) for f in a.ingest]
    if not entries:
        raise RecipeError(f"no latency results in {', '.join(a.runs)}: run edgekit bench DIR --device ... first")
    report = device_report.merge(entries, sources=[*a.runs, *a.ingest])
    with RunDir(Path(a.out), a.force) as tmp:
        device_report.write(report, tmp)
    return _print_device_report(report, Path(a.out))


def cmd_diagnose(a: argparse.Namespace) -> int:
    from .diagnose import diagnose
    from .validate.report_quant import divergence_markdown

    result = diagnose(Path(a.dir), a.target, a.precision, a.samples, a.threshold)
    print("\n".join(divergence_markdown(result)))
    print(f"\nwritten to {a.dir}/diagnose/{a.target}-{a.precision}.{{json,md}}")
    return 0


def cmd_results(a: argparse.Namespace) -> int:
    from .validate.results_table import write_results

    dirs = [Path(d) for d in a.dirs]
    command = "edgekit results " + " ".join(a.dirs) + (" --merge" if a.merge else "") + f" --out {a.out}"
    n = write_results(dirs, Path(a.out), command, merge=a.merge)
    if n == 0:
        raise RecipeError(f"no run directories (with report.json) among {a.dirs}; run `edgekit run RECIPE` first")
    print(f"{a.out}: {n} runs")
    return 0


def cmd_targets(a: argparse.Namespace) -> int:
    from .targets.base import all_targets

    for t in all_targets():
        ok, why = t.available()
        precisions = ",".join(p.value for p in t.precisions)
        print(f"{t.name:10s} {'yes' if ok else 'no ':3s}  {precisions:16s} {why}")
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from .recipe import load_recipe

    files = sorted(RECIPES_DIR.glob("*.yaml"))
    if not files:
        print(f"no recipes found in {RECIPES_DIR}")
    for f in files:
        r = load_recipe(f)
        print(f"{f.stem:14s} {r.description or r.model.source}")
    return 0


def cmd_recipe_check(a: argparse.Namespace) -> int:
    from .pipeline import plan_targets
    from .recipe import load_recipe
    from .transforms import get_transform

    r = load_recipe(a.file)
    plan_targets(r)
    for t in r.transforms:
        get_transform(t.name)
    print(
        f"{a.file}: ok ({r.name}: model {r.model.source}, targets "
        f"{', '.join(t.name for t in r.targets)}, precisions {', '.join(sorted(p.value for p in r.precisions()))})"
    )
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iterations", type=int, help="timed iterations per artifact (default 200)")
    p.add_argument("--warmup", type=int, help="warm-up iterations per artifact (default 20)")
    p.add_argument("--threads", type=int, help="runtime threads (default 2)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekit", description="Quantize, compile and validate models for edge targets.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="export one model to one or more targets, validated and benchmarked")
    e.add_argument("model", help="HF checkpoint dir, architecture name (vit, bert, ...) or package.module:factory")
    e.add_argument("--target", action="append", default=None, help="onnx, openvino, ... or all (repeat or comma)")
    e.add_argument("--precision", default="fp32,int8", help="comma list of fp32, fp16, int8 (default fp32,int8)")
    e.add_argument("--calib", help="calibration data: fashion-mnist[:split], digits, random, FILE.npz, FILE.csv")
    e.add_argument("--calib-samples", type=int, default=None)
    e.add_argument("--val", help="validation data (same forms as --calib)")
    e.add_argument("--val-samples", type=int, default=None)
    e.add_argument("--recipe", help="start from this recipe file; flags override it")
    e.add_argument("--config", action="append", default=[], help="model config override key=value (repeat)")
    e.add_argument("--weights", help="state_dict of a trained run (RUN/model/weights.pt)")
    e.add_argument("--input", action="append", default=[], help="input spec name:batch,3,32,32[:dtype] (repeat)")
    e.add_argument("--quantizer", choices=["edgekit", "native"], help="whose int8 encodings (default edgekit)")
    e.add_argument("--estimator", choices=["minmax", "percentile", "mse", "entropy"])
    e.add_argument("--out", help="output directory (default runs/NAME)")
    e.add_argument("--force", action="store_true", help="replace an existing output directory")
    e.add_argument("--no-bench", action="store_true", help="skip latency measurement")
    _bench_args(e)
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("run", help="run a recipe end to end")
    r.add_argument("recipe")
    r.add_argument("--out")
    r.add_argument("--force", action="store_true")
    r.add_argument("--no-bench", action="store_true")
    r.add_argument("--resume", action="store_true", help="continue an interrupted training stage from its checkpoint")
    r.add_argument("--reduced", action="store_true", help="tiny model, few steps/samples (CI; edgekit/reduced.py)")
    _bench_args(r)
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("retrain", help="run a recipe's train-phase transforms and training stage only")
    t.add_argument("recipe")
    t.add_argument("--out", help="output directory (default runs/NAME-retrain)")
    t.add_argument("--force", action="store_true", help="replace an existing output directory")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT.ckpt/")
    t.add_argument("--steps", type=int, help="override train.steps")
    t.set_defaults(func=cmd_retrain)

    v = sub.add_parser("validate", help="re-validate the artifacts of a run directory")
    v.add_argument("dir")
    v.set_defaults(func=cmd_validate)

    b = sub.add_parser("bench", help="re-benchmark the artifacts of a run directory, here or on devices")
    b.add_argument("dir", help="run directory (or artifact directory)")
    _bench_args(b)
    b.add_argument(
        "--device",
        action="append",
        help="local | ssh://user@host[:port][?python=PATH] | adb[:serial] (repeat); merged into OUT/report.*",
    )
    b.add_argument("--time", type=float, help="time budget per artifact in seconds (replaces --iterations)")
    b.add_argument("--benchmark-binary", help="TFLite benchmark_model for adb devices (host file or device path)")
    b.add_argument("--accuracy-samples", type=int, help="ship N validation samples + FP32 outputs with each artifact")
    b.add_argument("--out", help="device results and merged report (default DIR/devices)")
    b.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="merge device results and benchmark tool outputs into one report")
    rp.add_argument("runs", nargs="*", help="run directories (their devices/*.json and local latency)")
    rp.add_argument("--ingest", action="append", default=[], help="benchmark_app / benchmark_model / trtexec output")
    rp.add_argument("--tool", choices=["benchmark_app", "benchmark_model", "trtexec"], help="default: detected")
    rp.add_argument("--device", default="ingested", help="device name for --ingest files (default: ingested)")
    rp.add_argument("--out", required=True, help="output directory for report.{json,md,html} and plots/")
    rp.add_argument("--force", action="store_true", help="replace an existing output directory")
    rp.set_defaults(func=cmd_report)

    dg = sub.add_parser("diagnose", help="per-layer divergence (SQNR) of an artifact from the simulated model")
    dg.add_argument("dir")
    dg.add_argument("--target", default="onnx", help="a target whose runtime exposes layer outputs (onnx, openvino)")
    dg.add_argument("--precision", default="int8")
    dg.add_argument("--samples", type=int, default=8, help="validation samples to compare on (default 8)")
    dg.add_argument("--threshold", type=float, default=30.0, help="SQNR (dB) below which a layer departs")
    dg.set_defaults(func=cmd_diagnose)

    rs = sub.add_parser("results", help="docs/RESULTS.md (every recipe x target x precision) from run directories")
    rs.add_argument("dirs", nargs="+", help="run directories, e.g. runs/*")
    rs.add_argument("--out", default="docs/RESULTS.md")
    rs.add_argument(
        "--merge",
        action="store_true",
        help="update --out from these runs only: their recipes' rows replaced or added, every other row kept",
    )
    rs.set_defaults(func=cmd_results)

    sub.add_parser("targets", help="list targets and whether they run here").set_defaults(func=cmd_targets)
    sub.add_parser("recipes", help="list the shipped recipes").set_defaults(func=cmd_recipes)
    rc = sub.add_parser("recipe", help="recipe tools")
    rsub = rc.add_subparsers(dest="recipe_command", required=True)
    chk = rsub.add_parser("check", help="validate a recipe file")
    chk.add_argument("file")
    chk.set_defaults(func=cmd_recipe_check)
    return p


# Third-party loggers that warn at import about things irrelevant here: torchao's CUDA-only kernels failing to
# load on a CPU machine, and a torch pytree deprecation triggered by torchao's enums.
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    args = parser().parse_args(argv)
    if args.command == "export" and not args.target:
        args.target = ["onnx"]
    try:
        return int(args.func(args))
    except EdgekitError as exc:
        print(f"edgekit: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgekit: interrupted; partial output removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
