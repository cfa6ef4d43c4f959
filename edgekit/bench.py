"""``edgekit bench DIR --device D [--device D2 ...]``: every artifact of DIR on every device, each device's
outcomes saved as ``OUT/<device>.json`` (OUT defaults to DIR/devices), and all devices benchmarked so far
merged into one report there (report.json / report.md / report.html with plots).

An artifact that cannot run on a device (its runtime is missing there, Core ML off macOS) becomes an "error"
entry naming the fix; a device on which nothing could run is an error of the whole command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import RunDir, add_to_manifest
from .device import runner
from .device.accuracy import write_set
from .device.transports import ArtifactRef, BenchOptions, Transport, open_device
from .errors import DeviceError, OutputExistsError
from .status import DeviceStatus, validated
from .validate import device_report
from .validate.device_results import RESULTS_SCHEMA, is_results_folder, load_saved
from .validate.run_report import read_report


def find_artifacts(root: Path) -> list[ArtifactRef]:
    """A run directory's artifacts in report order (rows that were built), or every artifact below ``root``."""
    root = Path(root)
    if (root / "artifact.json").is_file():
        return [ArtifactRef.read(root, root.name)]
    if (root / "report.json").is_file():
        rows = read_report(root, error=DeviceError)["rows"]
        rels = [r["artifact"] for r in rows if r.get("artifact") and validated(r)]
    else:
        rels = [p.parent.relative_to(root).as_posix() for p in sorted(root.rglob("artifact.json"))]
    refs = [ArtifactRef.read(root / rel, rel) for rel in rels if (root / rel / "artifact.json").is_file()]
    if not refs:
        raise DeviceError(f"{root}: no edgekit artifacts (no artifact.json below it); pass a run or artifact directory")
    return refs


def entry(device: str, ref: ArtifactRef, outcome: dict[str, Any]) -> dict[str, Any]:
    """One artifact on one device: its record (named by the artifact's place in the run), or why not."""
    result = outcome.get("result")
    if result is not None:
        result = {**result, "artifact": ref.rel}
    status = (
        DeviceStatus.MEASURED
        if result is not None
        else (DeviceStatus.SKIPPED if "skipped" in outcome else DeviceStatus.ERROR)
    )
    return {
        "device": device,
        "artifact": ref.rel,
        "target": ref.target,
        "precision": ref.precision,
        "quantizer": ref.quantizer,
        "status": status,
        "note": outcome.get("error") or outcome.get("skipped"),
        "result": result,
    }


def bench_on(transport: Transport, refs: list[ArtifactRef], opts: BenchOptions) -> list[dict[str, Any]]:
    entries = [entry(transport.name, ref, o) for ref, o in zip(refs, transport.bench(refs, opts))]
    if not any(e["status"] == DeviceStatus.MEASURED for e in entries):
        first = next((e for e in entries if e["status"] == DeviceStatus.ERROR), entries[0])
        raise DeviceError(
            first["note"] if first["status"] == DeviceStatus.ERROR else f"{transport.name}: {first['note']}"
        )
    return entries


def save(out: Path, transport: Transport, entries: list[dict[str, Any]]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{transport.slug}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"schema": RESULTS_SCHEMA, "device": transport.name, "entries": entries}, indent=1))
    tmp.replace(path)
    return path


def bench_devices(
    root: Path,
    devices: list[str],
    opts: BenchOptions,
    out: Path | None = None,
    accuracy_samples: int | None = None,
    log: Any = print,
    force: bool = False,
) -> dict[str, Any]:
    """Results are merged into ``out`` when it is a device results folder; any other existing ``out`` (a run
    directory, say) is replaced only with ``force``. ``out`` is rewritten atomically once every device is done."""
    root = Path(root)
    out = Path(out) if out else root / "devices"
    refs = find_artifacts(root)
    transports = [open_device(spec) for spec in dict.fromkeys(devices)]  # bad specs fail before any work
    merging = is_results_folder(out) and not force
    if out.exists() and not merging and not force:
        raise OutputExistsError(
            f"--out '{out}' exists and is not a device results folder (no earlier edgekit bench --device "
            "results in it); choose another --out or pass --force to replace it"
        )
    staged = RunDir(out, force=True, update=merging)  # checks the path before any benchmark runs
    if accuracy_samples:
        n = write_run_sets(root, refs, accuracy_samples)
        log(f"accuracy set: {n} validation samples + FP32 reference outputs shipped with each artifact")
    with staged as tmp:
        for transport in transports:
            log(f"benchmarking {len(refs)} artifact(s) on {transport.name} ...")
            save(tmp, transport, bench_on(transport, refs, opts))
        report = device_report.merge(load_saved(tmp), sources=[str(root)])
        device_report.write(report, tmp)
    return report


def write_run_sets(root: Path, refs: list[ArtifactRef], samples: int) -> int:
    """Give every artifact of a run directory the first ``samples`` validation samples and their FP32 outputs."""
    from .rerun import validation_set  # the run's data set: imports torch, so only when asked

    if not (root / "report.json").is_file() or not (root / "reference.npz").is_file():
        raise DeviceError(
            f"--accuracy-samples needs a run directory (report.json + reference.npz); {root} is not one: "
            f"write ARTIFACT/{runner.ACCURACY_FILE} yourself (inputs, 'reference', optional 'labels')"
        )
    report = read_report(root, error=DeviceError)
    val = validation_set(report)
    with np.load(root / "reference.npz") as z:
        fp32 = z["fp32"]
    n = min(samples, len(val), len(fp32))
    inputs = {k: v[:n] for k, v in val.inputs.items()}
    labels = None if val.labels is None else val.labels[:n]
    written = [write_set(ref.path, inputs, fp32[:n], labels) for ref in refs]
    add_to_manifest(root, written)
    return n
