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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every Ray test; workers import edgekit from this tree (PYTHONPATH)."""
    ray = pytest.importorskip("ray")
    from edgekit.sweep.executors import worker_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": worker_env()})
    yield ray
    ray.shutdown()
