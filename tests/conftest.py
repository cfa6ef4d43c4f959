"""Shared fixtures: tiny models, tiny recipes, and an in-process CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_VIT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 8,
    "patch_size": 2,
}


def bundle(source: str, config: dict):
    """A model by architecture name and config, initialized with seed 0."""
    from edgekit.archs import load_model
    from edgekit.recipe import ModelSpec

    torch.manual_seed(0)
    return load_model(ModelSpec(source, dict(config)), None)


@pytest.fixture
def tiny_vit_recipe() -> dict:
    """A tiny ViT on 8x8 sklearn digits: exported to onnx at fp32 and int8, few benchmark iterations."""
    return {
        "name": "tiny-vit",
        "model": {"source": "vit", "config": dict(TINY_VIT)},
        "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 64}},
        "targets": [{"name": "onnx", "precisions": ["fp32", "int8"]}],
        "validation": {"data": {"source": "digits", "split": "test", "samples": 100}, "budget": 100.0},
        "benchmark": {"warmup": 2, "iterations": 5},
    }


@pytest.fixture
def run_cli(capsys):
    from edgekit.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["-q", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


class TinyConvNet(torch.nn.Module):
    """A custom nn.Module (not HF) for the package.module:factory path."""

    edgekit_inputs = None

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def tiny_convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyConvNet()


class Unexportable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, dim=-1).values


def unexportable() -> torch.nn.Module:
    return Unexportable()


class Rank6(torch.nn.Module):
    """Reshapes to a rank-6 tensor, which Core ML does not have (as Hiera's unroll does); every other target can."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 2, 2, 2, 2, 2).sum((1, 2, 3, 4, 5)).unsqueeze(1)


def rank6_net() -> torch.nn.Module:
    return Rank6()


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every Ray test; workers import edgekit from this tree (PYTHONPATH)."""
    ray = pytest.importorskip("ray")
    from edgekit.sweep.executors import worker_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": worker_env()})
    yield ray
    ray.shutdown()


# --- hostile-input helpers (tests/test_hostile_*.py) ---

TINY_VIT_FLAGS = [f"--config={k}={v}" for k, v in TINY_VIT.items()]


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every path below ``root`` (hidden ones included) -> (sha256 or 'dir'/'link', mode): equal trees are unchanged."""
    import hashlib

    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(p.relative_to(root))] = (kind, st.st_mode)
    return out


def assert_one_line_error(code: int, err: str, pattern: str, expected: int = 2) -> str:
    """Exit code ``expected``, exactly one stderr line starting 'edgekit: ', no traceback; returns the line."""
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("edgekit: ")]
    assert code == expected, err
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    assert pattern in lines[0], lines[0]
    return lines[0]


def cli_subprocess(*args: str, cwd: Path | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """The CLI as users run it: ``python -m edgekit -q ARGS`` with this checkout first on the path."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "-q", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run (tiny ViT, onnx fp32 + int8, digits, no benchmark) that tests copy before changing."""
    from edgekit.pipeline import run_recipe
    from edgekit.recipe import recipe_from_dict

    recipe = recipe_from_dict(
        {
            "name": "tiny-run",
            "model": {"source": "vit", "config": dict(TINY_VIT)},
            "quantization": {"calibration": {"source": "digits", "split": "train", "samples": 32}},
            "targets": [{"name": "onnx", "precisions": ["fp32", "int8"]}],
            "validation": {"data": {"source": "digits", "split": "test", "samples": 20}, "budget": 100.0},
            "benchmark": {"warmup": 1, "iterations": 3},
        }
    )
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    run_recipe(recipe, out, progress=False, benchmark=False, log=lambda *_: None)
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of :func:`tiny_run` to tamper with."""
    import shutil

    return Path(shutil.copytree(tiny_run, tmp_path / "run"))
