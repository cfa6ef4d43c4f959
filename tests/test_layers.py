"""The import contract (pyproject.toml, ``[tool.importlinter]``): edgekit's layers import only downwards, every
top-level module is in a layer, and the linter really sees edgekit's imports (a reversed pair breaks)."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

from importlinter.cli import lint_imports

import edgekit

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _layers() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return contract["layers"]


def test_import_contract_holds(tmp_path):
    assert lint_imports(str(PYPROJECT), cache_dir=str(tmp_path), no_logo=True) == 0


def test_every_top_level_module_is_in_a_layer():
    named = {m.strip() for layer in _layers() for m in layer.replace("|", ":").split(":")}
    package = Path(edgekit.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert {f"edgekit.{m}" for m in modules} == named


def test_a_reversed_pair_of_layers_breaks_the_contract(tmp_path):
    # pipeline imports recipe; declaring recipe above pipeline must fail, or the check sees nothing
    config = tmp_path / "reversed.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "edgekit"\n\n[[tool.importlinter.contracts]]\n'
        'name = "reversed"\ntype = "layers"\nlayers = ["edgekit.recipe", "edgekit.pipeline"]\n'
    )
    assert lint_imports(str(config), cache_dir=str(tmp_path / "cache"), no_logo=True) != 0
