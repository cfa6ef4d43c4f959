"""The ``edgekit`` command.

Exit codes: 0 every row within its budget; 1 a row over budget, or an artifact whose compile, validation or
benchmark raised (its row says ``error`` and why, in one line; the rest of the run and its report are written,
see :mod:`edgekit.isolate`); 2 bad input (one line naming what and the fix); 3 an internal error (one line;
``--debug`` shows the traceback, and re-raises an artifact's error instead of making it a row); 128 + N when
stopped by signal N (SIGINT, SIGTERM, SIGHUP), with partial output removed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import traceback
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from . import isolate
from .checks import cli_count, cli_finite_float, cli_positive_float
from .errors import EdgekitError, RecipeError
from .signals import signal_number, stop_signals_raise

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def _kv(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RecipeError(f"--config expects key=value, got '{item}'")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise RecipeError(f"--config {key}: cannot read the value '{value}' (a number, word or [list])") from None
    return out


def _input_spec(text: str) -> dict[str, Any]:
    """``name:batch,3,32,32[:dtype]`` -> a TensorSpec mapping."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise RecipeError(f"--input expects name:dim,dim,...[:dtype], got '{text}'")
    dims = [int(d) if d.isdigit() else d for d in parts[1].split(",")]
    if not parts[0] or any(d == "" or d == 0 for d in dims):
        raise RecipeError(f"--input '{text}': needs a name and non-empty, non-zero dimensions (name:batch,3,32,32)")
    return {"name": parts[0], "shape": dims, **({"dtype": parts[2]} if len(parts) == 3 else {})}


def build_export_recipe(a: argparse.Namespace) -> Any:
    from .recipe import load_recipe, name_from, recipe_from_dict

    base = load_recipe(a.recipe).to_dict() if a.recipe else {"name": name_from(Path(a.model.rstrip("/")).name)}
    model = dict(base.get("model") or {})
    model["source"] = a.model
    if a.config:
        model["config"] = {**model.get("config", {}), **_kv(a.config)}
    if a.weights:
        model["weights"] = a.weights
    if a.task:
        model["task"] = a.task
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

    return to_dict(DataSpec.parse(text, **({"samples": samples} if samples is not None else {})))


def _bench_overrides(base: dict[str, Any], a: argparse.Namespace) -> None:
    bench = dict(base.get("benchmark") or {})
    for key in ("iterations", "warmup", "threads"):
        if getattr(a, key, None) is not None:
            bench[key] = getattr(a, key)
    base["benchmark"] = bench


def _finish(result: Any) -> int:
    from .validate.report import problem_lines, summary_lines, text_table

    print()
    print("\n".join(summary_lines(result.report)))
    print()
    print(text_table(result.report))
    problems = problem_lines(result.report)
    if problems:
        print("\n" + "\n".join(problems))
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
    from .pipeline.retrain import retrain
    from .recipe import load_recipe, recipe_from_dict

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

    if a.hashes_only:
        return cmd_verify(a)
    return _finish(revalidate(Path(a.dir), progress=not a.quiet))  # checks the manifest first


def cmd_verify(a: argparse.Namespace) -> int:
    from .artifacts import verify_manifest

    print(f"{a.dir}: {verify_manifest(Path(a.dir))} files match manifest.json")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    if not a.device:
        if a.time or a.accuracy_samples or a.benchmark_binary or a.out:
            raise RecipeError(
                "--time, --accuracy-samples, --benchmark-binary and --out go with --device (e.g. --device local)"
            )
        from .rerun import rebench

        return _finish(rebench(Path(a.dir), a.iterations, a.warmup, a.threads, progress=not a.quiet))
    from .bench import bench_devices
    from .device.transports import BenchOptions

    given = {k: getattr(a, k) for k in ("iterations", "warmup", "threads") if getattr(a, k) is not None}
    opts = BenchOptions(**given, time_s=a.time, benchmark_binary=a.benchmark_binary)
    out = Path(a.out) if a.out else Path(a.dir) / "devices"
    report = bench_devices(Path(a.dir), a.device, opts, out, a.accuracy_samples, force=a.force)
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

    result = diagnose(Path(a.dir), a.target, a.precision, a.samples, a.threshold, force=a.force)
    print("\n".join(divergence_markdown(result)))
    print(f"\nwritten to {a.dir}/diagnose/{a.target}-{a.precision}.{{json,md}}")
    return 0


def cmd_results(a: argparse.Namespace) -> int:
    from .validate.results_table import write_results

    dirs = [Path(d) for d in a.dirs]
    command = "edgekit results " + " ".join(a.dirs) + (" --merge" if a.merge else "") + f" --out {a.out}"
    n = write_results(dirs, Path(a.out), command, force=a.force, merge=a.merge)
    print(f"{a.out}: {n} runs")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import load_sweep, run_sweep

    spec, base = load_sweep(a.sweep)
    result = run_sweep(spec, base, a.out, a.executor, a.address, a.workers, a.retry_failed, progress=not a.quiet)
    print((result.out / "sweep.md").read_text())
    print(f"{result.ran} job(s) run, {result.reused} already finished; report: {result.out}/sweep.{{md,html,json}}")
    return 0 if result.ok else 1


def cmd_targets(a: argparse.Namespace) -> int:
    from .targets.base import all_targets

    for t in all_targets():
        ok, why = t.available()
        precisions = ",".join(p.value for p in t.precisions)
        print(f"{t.name:10s} {'yes' if ok else 'no ':3s}  {precisions:16s} {why}")
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from .shipped import recipes_root, shipped_recipes

    found = list(shipped_recipes())
    if not found:
        print(f"no recipes found in {recipes_root()}")
    for f, r in found:
        print(f"{f.name.removesuffix('.yaml'):14s} {r.description or r.model.source}")
    if found:
        root = recipes_root()
        print(f"\nrecipe files: {root}/ (edgekit run {root}/{found[0][0].name})")
    return 0


def cmd_recipe_check(a: argparse.Namespace) -> int:
    from .pipeline import plan_targets
    from .recipe import load_recipe
    from .transforms import check_transform

    r = load_recipe(a.file)
    plan_targets(r)
    for t in r.transforms:
        check_transform(t.name, t.options)  # unknown, mistyped or out-of-range options fail here
    print(
        f"{a.file}: ok ({r.name}: model {r.model.source}, targets "
        f"{', '.join(t.name for t in r.targets)}, precisions {', '.join(sorted(p.value for p in r.precisions()))})"
    )
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iterations", type=cli_count("iterations"), help="timed iterations per artifact (default 200)")
    p.add_argument("--warmup", type=cli_count("warmup", 0), help="warm-up iterations per artifact (default 20)")
    p.add_argument("--threads", type=cli_count("threads"), help="runtime threads (default 2)")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with edgekit's error form: one line on stderr, exit code 2 (argparse prints usage first)."""

    def error(self, message: str) -> typing.NoReturn:
        print(f"edgekit: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    from .recipe import Quantizer

    p = ArgumentParser(prog="edgekit", description="Quantize, compile and validate models for edge targets.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no third-party load reports")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="export one model to one or more targets, validated and benchmarked")
    e.add_argument("model", help="HF checkpoint dir, architecture name (vit, bert, ...) or package.module:factory")
    e.add_argument("--target", action="append", default=None, help="onnx, openvino, ... or all (repeat or comma)")
    e.add_argument("--precision", default="fp32,int8", help="comma list of fp32, fp16, int8 (default fp32,int8)")
    e.add_argument(
        "--calib",
        help="calibration data: fashion-mnist[:split], digits, photos, images:DIR, random, FILE.npz, FILE.csv",
    )
    e.add_argument("--calib-samples", type=cli_count("samples"), default=None)
    e.add_argument("--val", help="validation data (same forms as --calib)")
    e.add_argument("--val-samples", type=cli_count("samples"), default=None)
    e.add_argument("--recipe", help="start from this recipe file; flags override it")
    e.add_argument("--config", action="append", default=[], help="model config override key=value (repeat)")
    e.add_argument("--weights", help="state_dict of a trained run (RUN/model/weights.pt)")
    e.add_argument(
        "--task",
        help="what the model does: image-classification, text-classification, feature-extraction, "
        "image-feature-extraction, text-generation (or classification, embedding, next-token); "
        "default from the checkpoint's config.json architectures",
    )
    e.add_argument("--input", action="append", default=[], help="input spec name:batch,3,32,32[:dtype] (repeat)")
    e.add_argument("--quantizer", choices=[q.value for q in Quantizer], help="who quantizes int8 (default edgekit)")
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
    t.add_argument("--steps", type=cli_count("steps"), help="override train.steps")
    t.set_defaults(func=cmd_retrain)

    v = sub.add_parser("validate", help="check a run's files against its manifest, then re-validate its artifacts")
    v.add_argument("dir")
    v.add_argument("--hashes-only", action="store_true", help="only check every file's sha256 (same as verify)")
    v.set_defaults(func=cmd_validate)

    vf = sub.add_parser("verify", help="check every file of a run directory against the sha256 in its manifest")
    vf.add_argument("dir")
    vf.set_defaults(func=cmd_verify)

    b = sub.add_parser("bench", help="re-benchmark the artifacts of a run directory, here or on devices")
    b.add_argument("dir", help="run directory (or artifact directory)")
    _bench_args(b)
    b.add_argument(
        "--device",
        action="append",
        help="local | ssh://user@host[:port][?python=PATH] | adb[:serial] (repeat); merged into OUT/report.*",
    )
    b.add_argument(
        "--time", type=cli_positive_float, help="time budget per artifact in seconds (replaces --iterations)"
    )
    b.add_argument("--benchmark-binary", help="TFLite benchmark_model for adb devices (host file or device path)")
    b.add_argument(
        "--accuracy-samples",
        type=cli_count("samples"),
        help="ship N validation samples + FP32 outputs with each artifact",
    )
    b.add_argument("--out", help="device results and merged report (default DIR/devices)")
    b.add_argument("--force", action="store_true", help="replace an --out that is not a device results folder")
    b.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="merge device results and benchmark tool outputs into one report")
    rp.add_argument("runs", nargs="*", help="run directories (their devices/*.json and local latency)")
    rp.add_argument("--ingest", action="append", default=[], help="benchmark_app / benchmark_model / trtexec output")
    rp.add_argument("--tool", choices=["benchmark_app", "benchmark_model", "trtexec"], help="default: detected")
    rp.add_argument("--device", default="ingested", help="device name for --ingest files (default: ingested)")
    rp.add_argument("--out", required=True, help="output directory for report.{json,md,html} and plots/")
    rp.add_argument("--force", action="store_true", help="replace an existing output directory")
    rp.set_defaults(func=cmd_report)

    dg = sub.add_parser("diagnose", help="per-node divergence (SQNR) of an artifact from its simulated program")
    dg.add_argument("dir")
    dg.add_argument("--target", default="onnx", help="a target whose runtime exposes layer outputs (onnx, openvino)")
    dg.add_argument("--precision", default="int8")
    dg.add_argument(
        "--samples", type=cli_count("samples"), default=8, help="validation samples to compare on (default 8)"
    )
    dg.add_argument("--threshold", type=cli_finite_float, default=30.0, help="SQNR (dB) below which a layer departs")
    dg.add_argument("--force", action="store_true", help="replace an earlier diagnosis of this artifact")
    dg.set_defaults(func=cmd_diagnose)

    rs = sub.add_parser("results", help="docs/RESULTS.md (every recipe x target x precision) from run directories")
    rs.add_argument("dirs", nargs="+", help="run directories, e.g. runs/*")
    rs.add_argument("--out", default="docs/RESULTS.md")
    rs.add_argument("--force", action="store_true", help="replace an existing --out file")
    rs.add_argument(
        "--merge",
        action="store_true",
        help="update --out from these runs only: their recipes' rows replaced or added, every other row kept",
    )
    rs.set_defaults(func=cmd_results)

    sw = sub.add_parser("sweep", help="run a sweep of models x targets x precisions x devices, one merged report")
    sw.add_argument("sweep", help="sweep file (YAML): models, targets, precisions, devices, overrides or jobs")
    sw.add_argument("--out", required=True, help="sweep directory: one run per job, logs, sweep.{json,md,html}")
    sw.add_argument("--executor", default="local", help="local (process pool, default) or ray")
    sw.add_argument("--address", help="Ray cluster: auto or ray://HOST:PORT (default: start one here)")
    sw.add_argument("--workers", type=int, help="jobs at once (default: local, CPUs / job num_cpus; ray, unbounded)")
    sw.add_argument("--retry-failed", action="store_true", help="run again the jobs that failed last time")
    sw.set_defaults(func=cmd_sweep)

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

# What to do about an operating-system error, by errno (the rest: the system's own words).
_OS_FIXES = {
    errno.ENOSPC: "free some space or choose another --out",
    errno.EDQUOT: "free some space or choose another --out",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "no permission: choose another --out or fix the permissions",
    errno.EPERM: "no permission: choose another --out or fix the permissions",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ENOENT: "check the path",
}


_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


@contextlib.contextmanager
def quiet_third_party(enabled: bool) -> Iterator[None]:
    """-q: no progress bars or load reports from transformers / huggingface_hub, whether it is imported before
    (the environment it reads at import) or already (its logging API); undone afterwards, for in-process use."""
    if not enabled:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    hf_logging = None
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging
    if hf_logging is not None:
        saved = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if hf_logging is None and "transformers" in sys.modules:  # imported inside: what the restored env says
            from transformers.utils import logging as hf_logging

            level = saved_env["TRANSFORMERS_VERBOSITY"] or "warning"
            saved = hf_logging.log_levels.get(level, hf_logging.WARNING), not saved_env["HF_HUB_DISABLE_PROGRESS_BARS"]
        if hf_logging is not None:
            hf_logging.set_verbosity(saved[0])
            (hf_logging.enable_progress_bar if saved[1] else hf_logging.disable_progress_bar)()


def os_error_line(exc: OSError) -> str:
    where = f"'{exc.filename}'" if exc.filename else "a file"
    fix = _OS_FIXES.get(exc.errno or -1, "check the path and the file system")
    return f"cannot use {where}: {exc.strerror or exc}; {fix}"


def _report(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, already reported in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if args.command == "export" and not args.target:
        args.target = ["onnx"]
    with stop_signals_raise(), quiet_third_party(args.quiet), isolate.reraise(args.debug):
        try:
            return int(args.func(args))
        except EdgekitError as exc:
            _report(f"edgekit: error: {(str(exc).splitlines() or [type(exc).__name__])[0]}", args.debug)
            return exc.exit_code
        except KeyboardInterrupt as exc:
            name = signal.Signals(signal_number(exc)).name
            _report(f"edgekit: interrupted ({name}); partial output removed", args.debug)
            return 128 + signal_number(exc)
        except OSError as exc:  # the file system refused (full, read-only, a name too long): the user's to fix
            _report(f"edgekit: error: {os_error_line(exc)}", args.debug)
            return EXIT_BAD_INPUT
        except MemoryError:
            _report("edgekit: error: out of memory; use fewer samples or a smaller batch_size", args.debug)
            return EXIT_BAD_INPUT
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:300]
            hint = "" if args.debug else " (rerun with --debug for the traceback)"
            _report(f"edgekit: internal error: {type(exc).__name__}: {first}; please report it{hint}", args.debug)
            return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
