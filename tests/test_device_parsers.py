"""Parsers of the standard tools' outputs -> edgekit-bench/1, with the runner's keys.

benchmark_app: real outputs captured on this project's machine (tests/data/benchmark_app_*), and a live run of
the benchmark_app that ships in the openvino package. benchmark_model and trtexec cannot run here: their
fixtures follow the documented formats (tensorflow/lite/tools/benchmark/README.md and benchmark_model.cc's
"Inference timings in us" / "Peak memory footprint" lines, Stat::OutputToStream's "count= first= curr= min=
max= avg= std= [p5= median= p95=]"; TensorRT's sampleReporting.cpp exportJSONTrace for --exportTimes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.device import parsers, runner
from edgekit.device.parsers.common import DEVICE_KEYS, RECORD_KEYS
from edgekit.errors import DeviceError

from .device_models import onnx_artifact, openvino_artifact

DATA = Path(__file__).parent / "data"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_runner_record_has_exactly_the_schema_keys(tmp_path):
    art = onnx_artifact(tmp_path / "onnx")
    rec = runner.benchmark(art, warmup=1, iterations=5)
    assert tuple(rec) == RECORD_KEYS
    assert tuple(rec["device"]) == DEVICE_KEYS


def test_benchmark_app_captured_sync_log_in_microseconds():
    rec = parsers.parse(_read("benchmark_app_sync_us.log"))
    assert rec["tool"] == "benchmark_app" and tuple(rec) == RECORD_KEYS
    # "Median: 152.44 us", "Average: 616.33 us", "Min: 67.71 us", "Max: 9018.63 us", "Throughput: 1550.01 FPS"
    assert rec["p50_ms"] == pytest.approx(0.15244)
    assert rec["mean_ms"] == pytest.approx(0.61633)
    assert (rec["min_ms"], rec["max_ms"]) == (pytest.approx(0.06771), pytest.approx(9.01863))
    assert rec["throughput_per_s"] == pytest.approx(1550.01)
    assert rec["iterations"] == 200 and rec["threads"] == 2 and rec["batch"] == 1
    assert rec["input_shapes"] == {"x": [1, 16]}
    assert rec["load_ms"] == pytest.approx(22.71 + 84.90)  # read + compile
    assert rec["runtime_version"].startswith("2026.4.1")
    assert rec["settings"]["api"] == "sync" and rec["settings"]["streams"] == "1"
    assert rec["settings"]["performance_hint"] == "LATENCY"
    assert rec["p90_ms"] is None and rec["std_ms"] is None and rec["peak_rss_mb"] is None  # not reported by the tool


def test_benchmark_app_captured_percentile_log_and_json_report():
    rec = parsers.parse(_read("benchmark_app_latency_p90.log"))
    # "-latency_percentile 90": the percentile line replaces the median
    assert rec["p90_ms"] == pytest.approx(6.96) and rec["p50_ms"] is None
    assert rec["mean_ms"] == pytest.approx(2.90) and rec["iterations"] == 673
    assert rec["input_shapes"] is None  # dynamic model: shapes only in -data_shape
    js = parsers.parse(_read("benchmark_app_report.json"))
    assert js["tool"] == "benchmark_app" and tuple(js) == RECORD_KEYS
    assert js["p90_ms"] == pytest.approx(6.96) and js["mean_ms"] == pytest.approx(2.90)
    assert js["iterations"] == 673 and js["throughput_per_s"] == pytest.approx(335.67)
    assert js["load_ms"] == pytest.approx(21.20 + 201.31)
    assert js["artifact"] == "runs/vit/openvino/fp32/model.xml"


@pytest.mark.skipif(
    shutil.which("benchmark_app", path=str(Path(sys.executable).parent)) is None, reason="no benchmark_app"
)
def test_benchmark_app_live_run_parses(tmp_path):
    art = openvino_artifact(tmp_path / "ov")
    app = shutil.which("benchmark_app", path=str(Path(sys.executable).parent))
    out = subprocess.run(
        [app, "-m", str(art / "model.xml"), "-d", "CPU", "-api", "sync", "-niter", "50", "-shape", "x[1,16]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    rec = parsers.parse(out.stdout + out.stderr)
    assert rec["iterations"] == 50 and rec["input_shapes"] == {"x": [1, 16]}
    assert 0 < rec["min_ms"] <= rec["p50_ms"] <= rec["max_ms"]


def test_benchmark_model_documented_output():
    rec = parsers.parse(_read("benchmark_model_android.txt"))
    assert rec["tool"] == "benchmark_model" and tuple(rec) == RECORD_KEYS
    # the timed block (after the second "Running benchmark"), microseconds -> ms
    assert rec["iterations"] == 1000 and rec["warmup"] == 9
    assert rec["p50_ms"] == pytest.approx(51.891)
    assert rec["mean_ms"] == pytest.approx(63.7432) and rec["std_ms"] == pytest.approx(60.716)
    assert (rec["min_ms"], rec["max_ms"]) == (pytest.approx(49.088), pytest.approx(686.105))
    assert rec["tool_stats"]["p95_ms"] == pytest.approx(68.628)
    assert rec["load_ms"] == pytest.approx(119.515)  # "Init: 119515"
    assert rec["peak_rss_mb"] == pytest.approx(61.3906)
    assert rec["threads"] == 4 and rec["artifact"] == "/data/local/tmp/model.tflite"
    assert rec["settings"]["delegates"] == ["XNNPACK"]


def test_benchmark_model_old_output_with_op_profiling():
    rec = parsers.parse(_read("benchmark_model_profiling_old.txt"))
    # the profiler's "Timings (microseconds): count=" summary is not the run statistics
    assert rec["iterations"] == 50 and rec["warmup"] == 7
    assert rec["mean_ms"] == pytest.approx(79.732) and rec["p50_ms"] is None  # no percentiles before 2.x
    assert rec["load_ms"] == pytest.approx(38.467) and rec["threads"] == 1


def test_benchmark_model_all_same_runs():
    text = "INFO: Running benchmark for at least 3 iterations\nINFO: count=3 curr=1500(all same)\n"
    rec = parsers.parse(text, "benchmark_model")
    assert rec["mean_ms"] == rec["min_ms"] == rec["max_ms"] == pytest.approx(1.5) and rec["std_ms"] == 0.0


def test_trtexec_export_times():
    trace = json.loads(_read("trtexec_times.json"))
    rec = parsers.parse(_read("trtexec_times.json"))
    assert rec["tool"] == "trtexec" and tuple(rec) == RECORD_KEYS
    lat = np.array([t["latencyMs"] for t in trace])
    assert rec["iterations"] == 5
    assert rec["p50_ms"] == pytest.approx(np.percentile(lat, 50)) and rec["p99_ms"] == pytest.approx(
        np.percentile(lat, 99)
    )
    assert rec["mean_ms"] == pytest.approx(lat.mean()) and rec["max_ms"] == pytest.approx(1.579)
    # throughput over the wall-clock span of the trace, not 1/mean
    assert rec["throughput_per_s"] == pytest.approx(5 * 1000 / (7.557 - 0.312))
    assert rec["tool_stats"]["gpu_compute_p50_ms"] == pytest.approx(1.2)


def test_unknown_output_is_a_clear_error(tmp_path, run_cli):
    with pytest.raises(DeviceError, match="cannot tell which tool"):
        parsers.parse("hello\n", source="x.txt")
    with pytest.raises(DeviceError, match="not TFLite benchmark_model output"):
        parsers.parse(_read("trtexec_times.json"), "benchmark_model")
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing here\n")
    code, _, err = run_cli("report", "--ingest", bad, "--out", tmp_path / "r")
    assert code == 2 and "pass --tool" in err and not (tmp_path / "r").exists()


def test_report_ingests_all_three_tools_into_one_report(tmp_path, run_cli):
    out = tmp_path / "r"
    args = [
        f"--ingest={DATA / n}"
        for n in ("benchmark_app_sync_us.log", "benchmark_model_android.txt", "trtexec_times.json")
    ]
    code, stdout, err = run_cli("report", *args, "--device", "lab", "--out", out)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema"] == "edgekit-device-report/1" and rep["devices"] == ["lab"]
    tools = {e["result"]["tool"]: e["result"] for e in rep["entries"]}
    assert set(tools) == {"benchmark_app", "benchmark_model", "trtexec"}
    assert all(tuple(r) == RECORD_KEYS for r in tools.values())
    md = (out / "report.md").read_text()
    assert "0.152" in md and "51.891" in md  # benchmark_app median, benchmark_model median
    assert (out / "plots" / "device_latency.png").is_file()
    code, _, err = run_cli("report", *args, "--out", out)
    assert code == 2 and "--force" in err
