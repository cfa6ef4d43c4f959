"""A run is checked against its manifest before it is trusted: a flipped byte fails, nothing is re-recorded."""

from __future__ import annotations

import pytest

from .conftest import assert_one_line_error, cli_subprocess, tree


def flip_byte(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_intact_run_verifies_and_validates_without_writing(run_copy, run_cli):
    before = tree(run_copy)
    code, out, err = run_cli("verify", run_copy)
    assert code == 0 and "files match manifest.json" in out, err
    code, out, err = run_cli("validate", run_copy)
    assert code == 0 and "Result: PASS" in out, err
    assert tree(run_copy) == before  # validate reads only: it works on a read-only copy, and rewrites no record


@pytest.mark.parametrize("command", [["validate"], ["validate", "--hashes-only"], ["verify"], ["bench"]])
def test_flipped_byte_fails_and_the_manifest_is_not_rewritten(run_copy, run_cli, command):
    flip_byte(run_copy / "onnx" / "int8" / "model.onnx")
    before = tree(run_copy)
    code, _, err = run_cli(*command, run_copy)
    assert_one_line_error(code, err, "'onnx/int8/model.onnx' does not match its sha256 in manifest.json")
    assert tree(run_copy) == before


def test_flipped_byte_fails_validate_as_a_subprocess(run_copy):
    flip_byte(run_copy / "onnx" / "fp32" / "model.onnx")
    manifest = (run_copy / "manifest.json").read_bytes()
    code, out, err = cli_subprocess("validate", run_copy)
    assert_one_line_error(code, err, "'onnx/fp32/model.onnx' does not match its sha256")
    assert "PASS" not in out and (run_copy / "manifest.json").read_bytes() == manifest


def test_missing_reference_and_truncated_report(run_copy, run_cli):
    (run_copy / "reference.npz").unlink()
    code, _, err = run_cli("validate", run_copy)
    assert_one_line_error(code, err, "'reference.npz' is recorded in manifest.json but missing")
    report = run_copy / "report.json"
    report.write_text(report.read_text()[:100])
    code, _, err = run_cli("validate", run_copy)
    assert_one_line_error(code, err, "manifest.json")


def test_damaged_run_without_a_usable_manifest(run_copy, run_cli):
    """Even when the manifest itself is gone or damaged, the error is one line and names the fix."""
    (run_copy / "manifest.json").write_text("{not json")
    code, _, err = run_cli("validate", run_copy)
    assert_one_line_error(code, err, "manifest.json is damaged")
    (run_copy / "manifest.json").unlink()
    code, _, err = run_cli("verify", run_copy)
    assert_one_line_error(code, err, "has no manifest.json")


@pytest.mark.parametrize(
    ("name", "data", "pattern"),
    [
        ("report.json", b'{"rows": [', "report.json is damaged"),
        ("report.json", b'{"rows": []}', "report.json is damaged"),
        ("reference.npz", b"PK\x03\x04 truncated", "reference.npz is damaged"),
    ],
)
def test_damage_the_manifest_recorded_is_still_one_line(run_copy, run_cli, name, data, pattern):
    """A run written damaged (its manifest recorded the damaged file) passes the integrity check; the loaders
    behind validate then name the damaged file themselves."""
    from edgekit.artifacts import add_to_manifest

    (run_copy / name).write_bytes(data)
    add_to_manifest(run_copy, [run_copy / name])
    code, _, err = run_cli("validate", run_copy)
    assert_one_line_error(code, err, pattern)
