#!/usr/bin/env python3
"""σReparam (Zhai et al., 2023) against attention entropy collapse: a small ViT trained on Fashion-MNIST at a
learning rate high enough to collapse attention entropy, without and with σReparam, same seed and steps.

Per learning rate and variant, one real ``edgekit run``: training (AdamW, no warm-up, no weight decay, cosine
decay, edgekit's default gradient clipping at norm 1), the attention entropy of the training batch every
``total // 50`` steps (per layer, mean over heads and query rows), then FP32 top-1 and INT8 top-1 (ONNX Runtime,
edgekit's encodings; and the simulated INT8 model) on the 10k Fashion-MNIST test images. With σReparam the
layers fold into plain Linears before quantization (exact, checked by the pipeline). Results:
benchmarks/results/sigma_reparam.json, and the README's table (``--markdown``).

    python benchmarks/sigma_reparam.py [--lrs 0.01 0.03] [--epochs 1] [--hidden 64] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from edgekit import run_recipe
from edgekit.artifacts import package_versions
from edgekit.recipe import recipe_from_dict
from edgekit.validate.render import md_table

ROOT = Path(__file__).resolve().parent.parent
CLAIM = (
    "Zhai et al. (2023): attention entropy collapse comes with unstable training; σReparam (every Linear as "
    "(γ/σ(W)) W) prevents it and trains a ViT stably without warm-up, weight decay, LayerNorm or adaptive optimizers "
    "(SEED-METHODS section 6). No Fashion-MNIST number is claimed: the claim is stability and no collapse."
)
VARIANTS = {
    "vanilla": [],
    "σReparam (all Linears)": [{"name": "sigma_reparam"}, {"name": "sigma_reparam_fold"}],
}


def recipe(name: str, transforms: list, lr: float, epochs: float, hidden: int, layers: int) -> dict:
    config = {
        "hidden_size": hidden,
        "num_attention_heads": 4,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
    }
    return {
        "name": name,
        "model": {"source": "vit", "config": config},
        "transforms": transforms,
        "train": {
            "data": {"source": "fashion-mnist", "split": "train"},
            "epochs": epochs,
            "lr": lr,
            "warmup_fraction": 0.0,
            "weight_decay": 0.0,
        },
        "quantization": {"calibration": {"source": "fashion-mnist", "split": "train", "samples": 512}},
        "targets": [{"name": "onnx", "precisions": ["fp32", "int8"]}],
        "validation": {"data": {"source": "fashion-mnist", "split": "test"}, "budget": 100.0},
    }


def _row(rep: dict, precision: str) -> float | None:
    for r in rep["rows"]:
        if r["target"] == "onnx" and r["precision"] == precision and r.get("accuracy"):
            return r["accuracy"]["metric"]
    return None


def summarize(rep: dict, variant: str, lr: float, seconds: float) -> dict:
    t = rep["train"]
    curve = [(step, float(np.nanmean(h))) for step, h in t["entropy_curve"]]
    low_step, low = min(curve, key=lambda c: c[1])
    losses = [v for _, v in t["loss_curve"]]
    return {
        "variant": variant,
        "lr": lr,
        "steps": t["steps"],
        "fp32_top1": rep["reference"]["fp32_torch"],
        "int8_sim_top1": rep["reference"]["sim_int8"],
        "int8_onnx_top1": _row(rep, "int8"),
        "final_loss": t["final_loss"],
        "max_loss_after_start": max(losses[1:]) if len(losses) > 1 else None,
        "entropy_init": curve[0][1],
        "entropy_lowest": low,
        "entropy_lowest_step": low_step,
        "entropy_final_val": t["entropy"]["after"]["mean"],
        "entropy_final_val_per_layer": [x["entropy"] for x in t["entropy"]["after"]["layers"]],
        "uniform_entropy": t["entropy"]["after"]["layers"][0]["uniform"],
        "entropy_curve": curve,
        "entropy_curve_per_layer": t["entropy_curve"],
        "loss_curve": t["loss_curve"],
        "transforms": [
            {k: x.get(k) for k in ("name", "changed", "max_rel_diff")} for x in rep["transforms"] if x.get("exact")
        ],
        "seconds": round(seconds, 1),
    }


def markdown(payload: dict) -> str:
    header = [
        "lr",
        "variant",
        "entropy at step 0 → lowest (step) → end (mean over layers, nats)",
        "final train loss",
        "FP32 top-1 %",
        "INT8 top-1 % (ORT / sim)",
    ]
    rows = [
        [
            f"{r['lr']:g}",
            r["variant"],
            f"{r['entropy_init']:.2f} → {r['entropy_lowest']:.2f} ({r['entropy_lowest_step']}) → "
            f"{r['entropy_final_val']:.2f}",
            f"{r['final_loss']:.3f}",
            f"{r['fp32_top1']:.2f}",
            f"{r['int8_onnx_top1']:.2f} / {r['int8_sim_top1']:.2f}",
        ]
        for r in payload["results"]
    ]
    return "\n".join(md_table(header, rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03])
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench-sigma"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sigma_reparam.json"))
    ap.add_argument("--markdown", action="store_true", help="print the README table of an existing --out and exit")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())))
        return
    results = []
    for lr in a.lrs:
        for variant, transforms in VARIANTS.items():
            name = f"vit-lr{lr:g}-{'sigma' if transforms else 'vanilla'}"
            begin = time.perf_counter()
            rec = recipe_from_dict(recipe(name, transforms, lr, a.epochs, a.hidden, a.layers))
            rep = run_recipe(rec, Path(a.runs) / name, force=True, benchmark=False, progress=False).report
            results.append(summarize(rep, variant, lr, time.perf_counter() - begin))
            print(json.dumps({k: v for k, v in results[-1].items() if "curve" not in k and "layer" not in k}))
    payload = {
        "benchmark": "sigma_reparam",
        "claim": CLAIM,
        "setup": {
            "model": f"HF ViT 28x28, patch 4, hidden {a.hidden}, {a.layers} layers, 4 heads, pre-LayerNorm",
            "data": "Fashion-MNIST: train 60k, test the 10k test images (FP32 and INT8 top-1)",
            "optimizer": "AdamW, no warm-up, weight decay 0, cosine decay, gradient clipping at norm 1, batch 128",
            "epochs": a.epochs,
            "seed": 0,
            "entropy": "mean over layers of the per-layer mean over heads and query rows of -Σ p log p; during "
            "training on the training batch every total//50 steps, at the end on 512 test images",
            "int8": "edgekit encodings (min-max, 512 calibration images), ONNX Runtime QDQ, and the simulated model",
        },
        "command": " ".join(["python benchmarks/sigma_reparam.py", *sys.argv[1:]]),
        "versions": package_versions(),
        "results": results,
    }
    Path(a.out).write_text(json.dumps(payload, indent=1))
    print(markdown(payload))


if __name__ == "__main__":
    main()
