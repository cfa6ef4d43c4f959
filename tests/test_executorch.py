"""ExecuTorch target specifics (the template tests in test_targets.py cover parity, int8 vs simulated and IO)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.device import runner
from edgekit.recipe import Precision
from edgekit.targets.base import get_target

from .test_targets import _compile, ctx, int8_context, val  # noqa: F401  (module fixtures shared with the template)

pytest.importorskip("executorch", reason="edgekit[executorch] is installed by make test")


def test_fp32_program_is_delegated_to_xnnpack(ctx, tmp_path):  # noqa: F811
    _, art = _compile(ctx, "executorch", Precision.FP32, tmp_path)
    ops = art.options["ops"]
    assert ops["partitions"] >= 1 and ops["delegated"].get("aten.linear", 0) + ops["delegated"].get("aten.addmm", 0)
    assert any(n.startswith("xnnpack:") and "delegated" in n for n in art.notes)


def test_int8_weights_are_folded_into_the_delegate(ctx, tmp_path):  # noqa: F811
    _, art = _compile(int8_context(ctx, "executorch"), "executorch", Precision.INT8, tmp_path)
    portable = art.options["ops"]["portable"]
    assert not any("quantize" in op for op in portable), portable  # every Q/DQ runs inside XNNPACK
    assert any("quantize_per_channel" in op or "dequantize_per_channel" in op for op in art.options["ops"]["delegated"])


def test_runner_loops_batches_and_accepts_odd_strides(ctx, val, tmp_path):  # noqa: F811
    _, art = _compile(ctx, "executorch", Precision.FP32, tmp_path)
    session = runner.load(art.path, threads=1)
    x = val.inputs["pixel_values"][:3]
    # a size-1 channel axis with a non-canonical stride (what slicing a reshaped array gives): ExecuTorch would
    # read it as channels-last if the runner passed it through
    odd = np.lib.stride_tricks.as_strided(x, x.shape, (x.strides[0], 4, x.strides[2], x.strides[3]))
    np.testing.assert_allclose(session.run({"pixel_values": odd}), session.run({"pixel_values": x.copy()}))
    assert session.run({"pixel_values": x}).shape == (3, 10)


def test_coreml_delegate_is_built_but_not_run_here(tmp_path, tiny_vit_recipe):
    import sys

    import edgekit
    from edgekit.recipe import recipe_from_dict

    if sys.platform == "darwin":
        pytest.skip("on macOS the Core ML delegate runs; this checks the Linux behaviour")
    tiny_vit_recipe["targets"] = [{"name": "executorch", "precisions": ["fp32"], "options": {"delegate": "coreml"}}]
    tiny_vit_recipe["targets"].append({"name": "onnx", "precisions": ["fp32"]})
    result = edgekit.run_recipe(
        recipe_from_dict(tiny_vit_recipe, "test"),
        tmp_path / "run",
        progress=False,
        benchmark=False,
        log=lambda *_: None,
    )
    row = next(r for r in result.report["rows"] if r["target"] == "executorch")
    assert row["status"] == "skipped" and "Apple devices only" in row["notes"][0]
    assert (tmp_path / "run" / row["artifact"] / "model.pte").stat().st_size > 0  # kept for the device
    assert result.passed
    with pytest.raises(Exception, match="Core ML delegate"):
        runner.load(tmp_path / "run" / row["artifact"])


def test_unknown_delegate_is_a_recipe_error():
    from edgekit.errors import RecipeError
    from edgekit.recipe import TargetSpec

    with pytest.raises(RecipeError, match="delegate 'qnn'"):
        get_target("executorch").check_spec(TargetSpec("executorch", (Precision.FP32,), {"delegate": "qnn"}))


def test_bench_on_the_local_device_measures_a_pte(ctx, tmp_path, run_cli):  # noqa: F811
    import json

    _, art = _compile(int8_context(ctx, "executorch"), "executorch", Precision.INT8, tmp_path)
    code, _, err = run_cli("bench", art.path, "--device", "local", "--time", "0.3", "--out", tmp_path / "dev")
    assert code == 0, err
    (entry,) = json.loads((tmp_path / "dev" / "report.json").read_text())["entries"]
    assert entry["result"]["runtime"] == "executorch" and entry["result"]["p50_ms"] > 0


class _StandardizedConv(torch.nn.Conv2d):
    """HF BiT's construct: the conv weight is standardized at run time, after edgekit's weight Q/DQ."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-6)
        return torch.nn.functional.conv2d(x, w, self.bias)


def test_a_weight_computed_at_run_time_lowers():
    """HF BiT's standardized conv: the weight the conv reads is computed, so the quantizer treats it as an
    activation (per-tensor Q/DQ after the standardization) and XNNPACK runs that conv on portable kernels."""
    from edgekit.data.base import DataSet
    from edgekit.quant import calibrate
    from edgekit.recipe import QuantSpec
    from edgekit.targets.executorch import _folded, _lower
    from edgekit.targets.pt2e_lowering import pt2e_form

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU(), _StandardizedConv(4, 4, 1)).eval()
    data = DataSet({"x": np.random.default_rng(0).random((16, 3, 4, 4), dtype=np.float32)}, None, "random")
    cal = calibrate(model, ["x"], data, QuantSpec(), profile="full_integer")
    assert cal.info["quantized_ops"]["conv"] == 2
    sample = (torch.rand(1, 3, 4, 4),)
    _, ops = _lower(_folded(pt2e_form(cal.sim), sample), sample, "xnnpack")
    assert ops["delegated"].get("aten.convolution", 0) >= 1


def test_max_without_keepdim_is_unsupported_with_the_reason(tmp_path):
    from edgekit.errors import UnsupportedOpError
    from edgekit.targets.executorch import _lower

    class PoolQuery(torch.nn.Module):  # HF Hiera's query pooling
        def forward(self, x):
            return x.view(1, 2, -1, 4).max(dim=1).values

    with pytest.raises(UnsupportedOpError, match=r"keep_dim == True.*keepdim=True"):
        _lower(PoolQuery(), (torch.rand(1, 8, 4),), "xnnpack")
