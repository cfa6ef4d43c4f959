"""The wheel carries every edgekit package and the shipped recipes (as edgekit.recipes), and ``edgekit recipes``
lists them from the installed package, outside the source checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tree (the build writes build/ and *.egg-info where it runs)."""
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("edgekit", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("edgekit-*.whl")
    return whl


def test_wheel_holds_the_recipes_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = sorted(p.name for p in (ROOT / "recipes").glob("*.yaml"))
    assert len(recipes) >= 13
    assert sorted(n.split("/")[-1] for n in names if n.startswith("edgekit/recipes/") and n.endswith(".yaml")) == (
        recipes
    )
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "edgekit").rglob("__init__.py"))
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert "edgekit/py.typed" in names


def test_edgekit_recipes_lists_them_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what `pip install edgekit-*.whl` puts in site-packages
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-m", "edgekit", "recipes"]
    proc = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith("recipe files:")]
    assert listed == [p.stem for p in sorted((ROOT / "recipes").glob("*.yaml"))]
    assert f"recipe files: {site / 'edgekit' / 'recipes'}/" in proc.stdout  # the installed copy, not the checkout
