"""One output policy for every command that writes: nothing over an existing path without --force, temp + rename,
nothing partial (or hidden) left behind on error, nothing outside the output root."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import TINY_VIT_FLAGS, assert_one_line_error, tree, write_yaml

TRTEXEC = Path(__file__).parent / "data" / "trtexec_times.json"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_bench_out_onto_an_existing_run_is_refused(tiny_run, run_copy, run_cli):
    before = tree(run_copy)
    code, _, err = run_cli("bench", tiny_run, "--device", "local", "--out", run_copy)
    assert_one_line_error(code, err, "is not a device results folder")
    assert tree(run_copy) == before and leftovers(run_copy.parent) == []


def test_results_reads_its_inputs_before_writing_and_never_overwrites(tmp_path, run_copy, run_cli):
    out = tmp_path / "RESULTS.md"
    code, _, err = run_cli("results", tmp_path / "not-a-run", "--out", out)
    assert_one_line_error(code, err, "no run directories")
    assert not out.exists() and leftovers(tmp_path) == []
    out.write_text("mine")
    code, _, err = run_cli("results", run_copy, "--out", out)
    assert_one_line_error(code, err, "already exists; pass --force")
    assert out.read_text() == "mine"
    # --force onto a symlink replaces the link, not the file it points to, and hides nothing
    target = tmp_path / "elsewhere.md"
    target.write_text("theirs")
    out.unlink()
    out.symlink_to(target)
    code, stdout, err = run_cli("results", run_copy, "--out", out, "--force")
    assert code == 0, err
    assert not out.is_symlink() and "tiny-run" in out.read_text() and target.read_text() == "theirs"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["file", "symlink", "dir"])
def test_force_onto_a_file_or_a_symlink_leaves_nothing_hidden(tmp_path, run_cli, kind):
    out, keep = tmp_path / "report", tmp_path / "keep"
    keep.mkdir()
    (keep / "x").write_text("x")
    if kind == "file":
        out.write_text("old")
    elif kind == "symlink":
        out.symlink_to(keep)
    else:
        out.mkdir()
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", out)
    assert_one_line_error(code, err, "already exists; pass --force")
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", out, "--force")
    assert code == 0, err
    assert out.is_dir() and not out.is_symlink() and (out / "report.json").is_file()
    assert (keep / "x").read_text() == "x"  # what a link pointed at is not touched
    assert leftovers(tmp_path) == []


def test_run_directories_follow_the_umask(tiny_run, tmp_path, run_cli):
    mask = os.umask(0o022)
    os.umask(mask)
    assert tiny_run.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", tmp_path / "rep")
    assert code == 0, err
    assert (tmp_path / "rep").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "rep" / "report.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_recipe_name_cannot_escape_the_output_root(tmp_path, run_cli, tiny_vit_recipe, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for name in ("../../x", "..", ".hidden", "a/b"):
        tiny_vit_recipe["name"] = name
        code, _, err = run_cli("run", write_yaml(tmp_path / "r.yaml", tiny_vit_recipe), "--no-bench")
        assert_one_line_error(code, err, "is not a plain name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml", "work"]
    assert list((tmp_path / "work").iterdir()) == []


def test_an_out_name_too_long_for_the_file_system(tmp_path, run_cli):
    out = tmp_path / ("a" * 300)
    code, _, err = run_cli("export", "vit", *TINY_VIT_FLAGS, "--precision", "fp32", "--out", out)
    assert_one_line_error(code, err, "choose a shorter --out")
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", out)
    assert_one_line_error(code, err, "choose a shorter --out")
    assert list(tmp_path.iterdir()) == []


def _fail_with(number: int):
    def fail(*args, **kwargs):
        raise OSError(number, os.strerror(number), str(args[0]) if args else None)

    return fail


def test_a_full_file_system_leaves_nothing(tmp_path, run_cli, monkeypatch):
    """ENOSPC on the first text write (simulated: a real full disk is not available to a test)."""
    monkeypatch.setattr(Path, "write_text", _fail_with(errno.ENOSPC))
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", tmp_path / "rep")
    assert_one_line_error(code, err, "No space left on device; free some space or choose another --out")
    code, _, err = run_cli(
        "export", "vit", *TINY_VIT_FLAGS, "--precision", "fp32", "--no-bench", "--out", tmp_path / "x"
    )
    assert_one_line_error(code, err, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_file_system_is_one_line(tmp_path, run_copy, run_cli, monkeypatch):
    """EROFS where the temporary output is made (simulated: tests run as root, which chmod does not stop)."""
    monkeypatch.setattr(tempfile, "mkdtemp", _fail_with(errno.EROFS))
    monkeypatch.setattr(tempfile, "mkstemp", _fail_with(errno.EROFS))
    before = sorted(tmp_path.iterdir())
    code, _, err = run_cli("report", "--ingest", TRTEXEC, "--out", tmp_path / "rep")
    assert_one_line_error(code, err, "Read-only file system; the file system is read-only: choose another --out")
    code, _, err = run_cli("results", run_copy, "--out", tmp_path / "R.md")
    assert_one_line_error(code, err, "Read-only file system")
    assert sorted(tmp_path.iterdir()) == before


def test_diagnose_never_replaces_an_earlier_diagnosis_without_force(run_copy, run_cli):
    code, _, err = run_cli("diagnose", run_copy, "--samples", "2")
    assert code == 0, err
    before = tree(run_copy)
    code, _, err = run_cli("diagnose", run_copy, "--samples", "2")
    assert_one_line_error(code, err, "onnx-int8.json' already exists; pass --force")
    assert tree(run_copy) == before
    code, _, err = run_cli("diagnose", run_copy, "--samples", "2", "--force")
    assert code == 0, err
    assert leftovers(run_copy / "diagnose") == []
    shutil.rmtree(run_copy / "diagnose")


def test_a_name_derived_from_a_model_path_stays_one_plain_name():
    from edgekit.recipe import SAFE_NAME, name_from

    for text, expected in (("my model", "my-model"), ("..", "model"), ("../x", "x"), ("vit", "vit")):
        assert name_from(text) == expected and SAFE_NAME.fullmatch(expected)
