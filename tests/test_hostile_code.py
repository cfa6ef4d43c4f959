"""Crafted pickles run no code: every torch.load is weights_only, for checkpoints and for --weights alike."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch

from .conftest import TINY_VIT, TINY_VIT_FLAGS, assert_one_line_error, cli_subprocess, tree, write_yaml


class Payload:
    """Unpickling this creates ``marker``: the proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def train_recipe() -> dict:
    return {
        "name": "tiny-train",
        "model": {"source": "vit", "config": dict(TINY_VIT)},
        "train": {"data": {"source": "digits", "split": "train", "samples": 64}, "steps": 2, "batch_size": 32},
        "targets": [{"name": "onnx", "precisions": ["fp32"]}],
        "validation": {"data": {"source": "digits", "split": "test", "samples": 16}, "budget": 100.0},
    }


def test_every_torch_load_in_edgekit_is_weights_only():
    root = Path(__file__).resolve().parent.parent / "edgekit"
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((path.name, kw.get("weights_only")))
    assert calls and all(flag == "True" for _, flag in calls), calls


def test_crafted_checkpoint_runs_no_code_on_resume(tmp_path):
    """`run --resume` and `retrain --resume` read OUT.ckpt/last.pt: a payload there must stay inert."""
    recipe = write_yaml(tmp_path / "r.yaml", train_recipe())
    for command, out in (("run", tmp_path / "out"), ("retrain", tmp_path / "rt")):
        marker = tmp_path / f"pwned-{command}"
        ckpt = out.with_name(out.name + ".ckpt")
        ckpt.mkdir()
        torch.save({"model": Payload(marker), "step": 1}, ckpt / "last.pt")
        before = tree(tmp_path)
        extra = ["--no-bench"] if command == "run" else []
        code, _, err = cli_subprocess(command, recipe, "--out", out, "--resume", *extra)
        assert not marker.exists(), f"{command} --resume ran code from the checkpoint"
        assert_one_line_error(code, err, "is not an edgekit training checkpoint")
        assert tree(tmp_path) == before  # no output, no temp directory, the checkpoint left for the user


def test_crafted_weights_run_no_code_and_the_message_never_says_weights_only_false(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pt"
    torch.save({"w": Payload(marker)}, evil)
    out = tmp_path / "out"
    code, _, err = cli_subprocess(
        "export", "vit", *TINY_VIT_FLAGS, "--weights", evil, "--precision", "fp32", "--out", out
    )
    assert not marker.exists()
    line = assert_one_line_error(code, err, "is not a plain state_dict of tensors")
    assert "weights_only=False" not in err and "torch.save(model.state_dict()" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_checkpoint_round_trip_is_weights_only_loadable(tmp_path):
    """What training saves (optimizer, schedule, NumPy RNG state and data order) loads back with weights_only."""
    from edgekit.train.checkpoint import load_checkpoint, save_checkpoint
    from edgekit.train.trainer import schedule

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(1, 10))
    rng = np.random.default_rng(0)
    order = rng.permutation(7)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    save_checkpoint(tmp_path, {**state, "rng": rng.bit_generator.state, "order": order, "step": 3, "curve": [(0, 1.5)]})
    torch.load(tmp_path / "last.pt", weights_only=True)  # the file itself is plain
    back = load_checkpoint(tmp_path)
    assert isinstance(back["order"], np.ndarray) and back["order"].tolist() == order.tolist()
    assert back["rng"] == rng.bit_generator.state and back["step"] == 3 and back["curve"] == [(0, 1.5)]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left
