"""The adb transport. On a real Android device (adb + an attached device + EDGEKIT_BENCHMARK_MODEL naming a
benchmark_model binary built for it) the full path runs; elsewhere that test is skipped, saying which is
missing. The transport's own mechanics (temp dir, push, quoted shell lines, cleanup, parsing, skipping
non-.tflite artifacts) are exercised against a stand-in ``adb`` that runs the shell lines on this machine
under a fake device root, exactly as ``adb shell`` would hand them to the device's sh."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .device_models import onnx_artifact

FAKE_ADB = f"""#!{sys.executable}
import os, shutil, subprocess, sys
root, args = os.environ["FAKE_ADB_ROOT"], sys.argv[1:]
if args[:1] == ["-s"]:
    if args[1] != "emulator-5554":
        sys.exit("error: device 'x' not found")
    args = args[2:]
if args[0] == "get-state":
    print("device")
elif args[0] == "push":
    dst = root + args[2]
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(args[1], dst)
elif args[0] == "shell":  # adb joins the words with spaces; the device's sh parses the line
    line = " ".join(args[1:]).replace("/data/local/tmp", root + "/data/local/tmp")
    p = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    sys.stdout.write(p.stdout.replace(root, "")); sys.stderr.write(p.stderr.replace(root, ""))
    sys.exit(p.returncode)
"""

# benchmark_model's documented output lines, with the run count it was asked for
FAKE_BENCHMARK_MODEL = """#!/bin/sh
for a in "$@"; do case "$a" in --graph=*) g="${a#--graph=}";; --num_runs=*) n="${a#--num_runs=}";;
  --num_threads=*) t="${a#--num_threads=}";; esac; done
[ -f "$g" ] || { echo "ERROR: Could not open '$g'." >&2; exit 1; }
echo "INFO: Num threads: [$t]"
echo "INFO: Graph: [$g]"
echo "INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=3 first=1300 curr=1200 min=1200 max=1300 avg=1233.3 std=47"
echo "INFO: Running benchmark for at least $n iterations and at least 0 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=$n first=1300 curr=1250 min=1000 max=1500 avg=1250 std=100 p5=1050 median=1240 p95=1450"
echo "INFO: Inference timings in us: Init: 5000, First inference: 1300, Warmup (avg): 1233.3, Inference (avg): 1250"
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _tflite_artifact(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"TFL3 stand-in")
    meta = json.loads((onnx_artifact(folder.parent / "_o") / "artifact.json").read_text())
    meta.update(target="tflite", runtime="litert", file="model.tflite")
    (folder / "artifact.json").write_text(json.dumps(meta))
    return folder


def test_adb_transport_mechanics_with_stand_in_adb(tmp_path, monkeypatch, run_cli):
    bindir, device = tmp_path / "bin", tmp_path / "device"
    bindir.mkdir()
    (device / "data" / "local" / "tmp").mkdir(parents=True)
    _executable(bindir / "adb", FAKE_ADB)
    binary = _executable(tmp_path / "benchmark_model", FAKE_BENCHMARK_MODEL)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(device))
    run = tmp_path / "run"
    _tflite_artifact(run / "tflite" / "fp32")
    onnx_artifact(run / "onnx" / "fp32")
    code, _, err = run_cli(
        "bench", run, "--device", "adb:emulator-5554", "--benchmark-binary", binary, "--iterations", "40"
    )
    assert code == 0, err
    rep = json.loads((run / "devices" / "report.json").read_text())
    e = {x["artifact"]: x for x in rep["entries"]}
    rec = e["tflite/fp32"]["result"]
    assert rec["tool"] == "benchmark_model" and rec["iterations"] == 40 and rec["p50_ms"] == pytest.approx(1.24)
    assert rec["threads"] == 2 and rec["warmup"] == 3 and rec["device"]["system"] == "Android"
    assert e["onnx/fp32"]["status"] == "skipped" and ".tflite artifacts only" in e["onnx/fp32"]["note"]
    assert list((device / "data" / "local" / "tmp").iterdir()) == []  # the device's temp dir is removed

    code, _, err = run_cli("bench", run, "--device", "adb:emulator-5554")
    assert code == 2 and "--benchmark-binary" in err
    code, _, err = run_cli("bench", run, "--device", "adb:other", "--benchmark-binary", binary)
    assert code == 2 and "no usable adb device" in err


def _real_device_skip_reason() -> str | None:
    if shutil.which("adb") is None:
        return "needs a real Android device over adb; none can exist on this machine (no adb, no USB device)"
    out = subprocess.run(["adb", "devices"], capture_output=True, text=True, timeout=30).stdout
    if not [ln for ln in out.splitlines()[1:] if ln.strip().endswith("device")]:
        return "no Android device attached ('adb devices' lists none)"
    if not os.environ.get("EDGEKIT_BENCHMARK_MODEL"):
        return "set EDGEKIT_BENCHMARK_MODEL to a TFLite benchmark_model binary built for the attached device"
    return None


@pytest.mark.slow
def test_adb_real_device(tmp_path, tiny_vit_recipe, run_cli):
    reason = _real_device_skip_reason()
    if reason:
        pytest.skip(reason)
    import edgekit
    from edgekit.recipe import recipe_from_dict

    tiny_vit_recipe["targets"] = [{"name": "tflite", "precisions": ["fp32"]}]
    edgekit.run_recipe(recipe_from_dict(tiny_vit_recipe), tmp_path / "run", progress=False, log=lambda *_: None)
    code, _, err = run_cli(
        "bench", tmp_path / "run", "--device", "adb", "--benchmark-binary", os.environ["EDGEKIT_BENCHMARK_MODEL"]
    )
    assert code == 0, err
    (entry,) = json.loads((tmp_path / "run" / "devices" / "report.json").read_text())["entries"]
    assert entry["status"] == "measured" and entry["result"]["mean_ms"] > 0
