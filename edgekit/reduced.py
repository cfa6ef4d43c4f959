"""Reduced mode: any recipe, tiny and fast, for CI (``edgekit run --reduced``, ``run_recipe(..., reduced=True)``).

Every shrink lives here, so a new recipe is covered without writing anything:

* model: the family's ``TINY`` config is merged over the recipe's (a family not listed keeps the recipe's config;
  a checkpoint directory or factory is used as is);
* training: ``TRAIN_STEPS`` steps of ``TRAIN_BATCH`` samples drawn from at most ``TRAIN_SAMPLES``;
* calibration ``CALIB_SAMPLES``, validation ``VAL_SAMPLES`` and accuracy-aware ranking ``RANK_SAMPLES`` samples,
  at most ``MAX_LENGTH`` tokens for text; accuracy-aware quantization always ranks (``max_drop: 0``) and reverts at
  most ``RANK_LAYERS`` layers;
* benchmark: ``BENCH`` (1 warm-up, 3 timed runs);
* the accuracy budget becomes ``LOOSE_BUDGET`` (never exceeded): a model trained for a few steps and validated on
  a few samples says nothing about accuracy (tests check parity with the PyTorch model instead).

Targets, precisions, transforms and every other option stay as written.

The run is named ``NAME-reduced`` (default output ``runs/NAME-reduced``) so it never passes for a result.
"""

from __future__ import annotations

from typing import Any

from .recipe import Recipe, recipe_from_dict

TINY: dict[str, dict[str, Any]] = {
    "vit": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "deit": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "swin": {"embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2]},
    "convnext": {"hidden_sizes": [8, 16, 32], "depths": [1, 1, 1]},
    "poolformer": {"hidden_sizes": [8, 16, 32, 32], "depths": [1, 1, 1, 1]},
    "cvt": {"embed_dim": [16, 32], "depth": [1, 2], "num_heads": [1, 2]},  # HF CvT needs depth[i] > i
    "pvt_v2": {"hidden_sizes": [16, 32], "depths": [1, 1], "num_attention_heads": [1, 2]},
    "repvgg": {"widths": [8, 16, 32], "depths": [1, 1, 1]},
    "mobileone": {"widths": [8, 16, 32], "depths": [1, 1, 1]},
    "fastvit": {"widths": [8, 16, 32], "depths": [1, 1, 1]},
    "tnt": {"inner_dim": 8, "inner_heads": 2, "dim": 16, "heads": 2, "depth": 1},
    "crossvit": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 1], "blocks": 1},
    "fmvit": {"widths": [8, 16], "depths": [1, 1]},
    "bert": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "minilm": {"num_hidden_layers": 1},
    "opt": {
        "hidden_size": 32,
        "word_embed_proj_dim": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "ffn_dim": 64,
    },
}
TRAIN_STEPS, TRAIN_BATCH, TRAIN_SAMPLES = 3, 16, 256
CALIB_SAMPLES, VAL_SAMPLES, RANK_SAMPLES, RANK_LAYERS = 16, 48, 32, 2
MAX_LENGTH = 16
BENCH = {"warmup": 1, "iterations": 3}
LOOSE_BUDGET = 100.0  # larger than any top-1 (points) or cosine drop


def _data(spec: dict[str, Any] | None, samples: int) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {**spec, "samples": min(spec.get("samples") or samples, samples), "max_length": MAX_LENGTH}


def tiny_config(config: dict[str, Any], tiny: dict[str, Any]) -> dict[str, Any]:
    """``tiny`` over ``config``; a per-stage list keeps the recipe's number of stages (cut, or its last value
    repeated), so e.g. a two-stage ConvNeXt stays two-stage."""
    out = dict(config)
    for key, value in tiny.items():
        have = config.get(key)
        if isinstance(value, list) and isinstance(have, list) and len(have) != len(value):
            value = [value[min(i, len(value) - 1)] for i in range(len(have))]
        out[key] = value
    return out


def reduce_recipe(recipe: Recipe) -> Recipe:
    """The same recipe at a tiny size: runs every stage, target and transform in seconds."""
    d = recipe.to_dict()
    d["name"] = f"{recipe.name}-reduced"
    d["description"] = f"REDUCED MODE (tiny model, few steps; not a result): {recipe.description}"
    model = d["model"]
    model["config"] = tiny_config(model.get("config", {}), TINY.get(model["source"], {}))
    model["weights"] = None  # trained for another size
    if d.get("train"):
        t = d["train"]
        t.update(steps=TRAIN_STEPS, batch_size=TRAIN_BATCH, data=_data(t["data"], TRAIN_SAMPLES))
    q = d["quantization"]
    q["calibration"] = _data(q.get("calibration"), CALIB_SAMPLES)
    if q.get("accuracy_aware"):
        aa = q["accuracy_aware"]
        aa.update(
            max_drop=0.0,  # always exercise the ranking
            samples=RANK_SAMPLES,
            max_layers=min(aa["max_layers"], RANK_LAYERS),
            data=_data(aa.get("data"), RANK_SAMPLES),
        )
    v = d["validation"]
    v["data"] = _data(v.get("data"), VAL_SAMPLES) or {"source": "random", "samples": VAL_SAMPLES}
    v["budget"] = LOOSE_BUDGET
    d["benchmark"] = {**d["benchmark"], **BENCH}
    return recipe_from_dict(d, f"{recipe.name} (reduced)")
