"""report.json's one reader: the schema version, the keys a command needs, one-line errors."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import DeviceError, ModelError
from edgekit.status import Status
from edgekit.validate.run_report import REPORT_SCHEMA, read_report


def _write(tmp_path, doc):
    (tmp_path / "report.json").write_text(json.dumps(doc))
    return tmp_path


def test_reads_current_and_unversioned_reports(tmp_path):
    row = {"target": "onnx", "precision": "fp32", "status": Status.OK, "notes": []}
    assert json.dumps(row)  # a Status serializes as its word
    doc = read_report(_write(tmp_path, {"schema": REPORT_SCHEMA, "recipe": "r", "rows": [row]}))
    assert doc["rows"][0]["status"] == Status.OK and {Status.OK: 1}["ok"] == 1
    assert read_report(_write(tmp_path, {"recipe": "r", "rows": []}))["rows"] == []  # before versioning: schema 1


def test_refuses_a_newer_schema_naming_the_fix(tmp_path):
    with pytest.raises(ModelError, match=r"schema 99.*upgrade edgekit"):
        read_report(_write(tmp_path, {"schema": 99, "recipe": "r", "rows": []}))


def test_missing_keys_and_damage_are_one_line_errors_of_the_callers_kind(tmp_path):
    with pytest.raises(DeviceError, match=r"report.json is damaged \(KeyError: 'io'\)"):
        read_report(_write(tmp_path, {"recipe": "r", "rows": []}), ("rows", "io"), DeviceError)
    (tmp_path / "report.json").write_text('{"rows": [')
    with pytest.raises(ModelError, match=r"report\.json is damaged"):
        read_report(tmp_path)
    with pytest.raises(ModelError, match=r"no report\.json"):
        read_report(tmp_path / "elsewhere")
