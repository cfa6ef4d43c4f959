"""Bad input: one line that says what and how to fix, exit code 2, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import write_yaml

TINY = [
    "--config",
    "hidden_size=32",
    "--config",
    "num_hidden_layers=1",
    "--config",
    "num_attention_heads=2",
    "--config",
    "image_size=8",
    "--config",
    "patch_size=2",
]


def _assert_clean_failure(code, err, out_dir, pattern):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("edgekit: error:")]
    assert len(lines) == 1, err
    assert pattern in lines[0], lines[0]
    assert not out_dir.exists()
    assert not any(p.name.startswith(f".{out_dir.name}.tmp") for p in out_dir.parent.iterdir())


def test_unknown_recipe_key(run_cli, tmp_path, tiny_vit_recipe):
    tiny_vit_recipe["validaton"] = {}
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "unknown key 'validaton' (did you mean 'validation'?)")


def test_wrong_input_shape(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(
        "export",
        "vit",
        *TINY,
        "--input",
        "pixel_values:batch,1,9,9",
        "--precision",
        "fp32",
        "--val",
        "random",
        "--out",
        out,
    )
    _assert_clean_failure(code, err, out, "the model failed on inputs")


def test_wrong_input_dtype(run_cli, tmp_path):
    out = tmp_path / "out"
    npz = tmp_path / "calib.npz"
    np.savez(npz, pixel_values=np.zeros((4, 1, 8, 8), np.float64))
    code, _, err = run_cli("export", "vit", *TINY, "--calib", npz, "--out", out)
    _assert_clean_failure(code, err, out, "has dtype float64 but the model expects float32")


def test_missing_model_path(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("export", str(tmp_path / "no-such-model"), "--precision", "fp32", "--out", out)
    _assert_clean_failure(code, err, out, "does not exist")


def test_unknown_architecture_suggests(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("export", "vitt", "--precision", "fp32", "--out", out)
    _assert_clean_failure(code, err, out, "did you mean 'vit'")


def test_op_a_target_cannot_convert_names_op_and_node(run_cli, tmp_path):
    """Not bad input but the converter's limit: the artifact's row says so in one line and the run fails (exit 1)."""
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        "export",
        "tests.conftest:unexportable",
        "--input",
        "x:batch,4",
        "--precision",
        "fp32",
        "--val",
        "random",
        "--out",
        out,
    )
    assert code == 1 and "Traceback" not in err
    assert "onnx fp32: unsupported: " in stdout and "operator 'aten::cummax' at node" in stdout
    assert not (out / "onnx").exists() and (out / "report.md").is_file()


def test_empty_calibration_data(run_cli, tmp_path):
    out = tmp_path / "out"
    npz = tmp_path / "empty.npz"
    np.savez(npz, pixel_values=np.zeros((0, 1, 8, 8), np.float32))
    code, _, err = run_cli("export", "vit", *TINY, "--calib", npz, "--out", out)
    _assert_clean_failure(code, err, out, "is empty")


def test_mismatched_calibration_data(run_cli, tmp_path):
    out = tmp_path / "out"
    npz = tmp_path / "calib.npz"
    np.savez(npz, images=np.zeros((4, 1, 8, 8), np.float32))
    code, _, err = run_cli("export", "vit", *TINY, "--calib", npz, "--out", out)
    _assert_clean_failure(code, err, out, "provides inputs ['images'] but the model expects ['pixel_values']")


def test_output_directory_exists(run_cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli("export", "vit", *TINY, "--precision", "fp32", "--out", out)
    assert code == 2 and "already exists; pass --force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_target_and_bad_precision(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("export", "vit", "--target", "openvnio", "--precision", "fp32", "--out", out)
    _assert_clean_failure(code, err, out, "did you mean 'openvino'")
    code, _, err = run_cli("export", "vit", "--precision", "int3", "--out", out)
    _assert_clean_failure(code, err, out, "'int3' is not valid")


@pytest.mark.parametrize(
    ("transform", "options", "pattern"),
    [
        ("ecoformer", {"nbit": 8}, "transform ecoformer: options: unknown key 'nbit' (did you mean 'nbits'?)"),
        ("ecoformer", {"nbits": "eight"}, "transform ecoformer: options.nbits: expected int, got 'eight'"),
        ("unified_norm", {"outlier_filter": "no"}, "transform unified_norm: options.outlier_filter: expected bool"),
        ("fuse_norm", {"window": 2}, "transform fuse_norm: options: unknown key 'window'"),
        ("sigma_reparam", {"layers": "convs"}, "transform sigma_reparam: options: layers must be one of"),
    ],
)
def test_recipe_check_rejects_bad_transform_options(run_cli, tmp_path, tiny_vit_recipe, transform, options, pattern):
    tiny_vit_recipe["transforms"] = [{"name": transform, "options": options}]
    path = write_yaml(tmp_path / "r.yaml", tiny_vit_recipe)
    code, out, err = run_cli("recipe", "check", path)
    _assert_clean_failure(code, err, tmp_path / "out", pattern)
    assert "ok" not in out


@pytest.mark.parametrize(
    ("target", "options", "pattern"),
    [
        ("onnx", {"op_type": ["MatMul"]}, "target onnx: options: unknown key 'op_type' (did you mean 'op_types'?)"),
        ("onnx", {"op_types": [3]}, "target onnx: options.op_types: invalid value [3]"),
        ("tensorrt", {"max_batch": "32"}, "target tensorrt: options.max_batch: expected int, got '32'"),
        ("tensorrt", {"workspace_mb": 0}, "target tensorrt: options: workspace_mb must be positive, got 0"),
        ("tflite", {"dynamic": "yes"}, "target tflite: options.dynamic: expected bool, got 'yes'"),
        ("openvino", {"inference_precision": 16}, "target openvino: options.inference_precision: expected str"),
        ("executorch", {"delegate": "qnn"}, "target executorch: options: delegate 'qnn' is not one of"),
        ("coreml", {"compute_unit": "ALL"}, "target coreml: options: unknown key 'compute_unit'"),
        ("coreml", {"palettize_bits": 4.0}, "target coreml: options.palettize_bits: expected int, got 4.0"),
        ("coreml", {"flexible_shapes": {"batch": "8..1"}}, "target coreml: options: flexible_shapes.batch '8..1'"),
    ],
)
def test_recipe_check_rejects_bad_target_options(run_cli, tmp_path, tiny_vit_recipe, target, options, pattern):
    tiny_vit_recipe["targets"] = [{"name": target, "precisions": ["fp32"], "options": options}]
    code, out, err = run_cli("recipe", "check", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe))
    _assert_clean_failure(code, err, tmp_path / "out", pattern)
    assert "ok" not in out


def test_recipe_check_rejects_a_bad_target_option_without_the_backend(run_cli, tmp_path, tiny_vit_recipe, monkeypatch):
    """Options are parsed before the backend is required: a machine without coremltools still catches the typo."""
    from edgekit.targets.base import Target

    monkeypatch.setattr(Target, "installed", lambda self: False)
    tiny_vit_recipe["targets"] = [{"name": "coreml", "precisions": ["fp32"], "options": {"int8_mod": "weights"}}]
    code, _, err = run_cli("recipe", "check", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe))
    _assert_clean_failure(code, err, tmp_path / "out", "target coreml: options: unknown key 'int8_mod'")


def test_recipe_check_takes_good_target_options(run_cli, tmp_path, tiny_vit_recipe):
    tiny_vit_recipe["targets"] = [
        {"name": "onnx", "precisions": ["fp32"], "options": {"op_types": ["MatMul", "Conv"]}},
        {"name": "tensorrt", "precisions": ["fp32"], "options": {"max_batch": 8, "workspace_mb": 512}},
        {"name": "coreml", "precisions": ["fp32"], "options": {"int8_mode": "weights", "flexible_shapes": {}}},
    ]
    code, out, err = run_cli("recipe", "check", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe))
    assert code == 0 and ": ok (" in out, err


def test_recipe_check_takes_good_transform_options(run_cli, tmp_path, tiny_vit_recipe):
    tiny_vit_recipe["transforms"] = [{"name": "unified_norm", "options": {"window": 2}}, {"name": "fuse_norm"}]
    code, out, err = run_cli("recipe", "check", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe))
    assert code == 0 and ": ok (" in out, err
