"""HF transformers vision families (random init from a config, or a local checkpoint directory).

The defaults are small variants for 28x28 single-channel images (Fashion-MNIST); every key can be
overridden from the recipe's ``model.config`` or ``edgekit export --config key=value``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelError
from ..recipe import TensorSpec
from .base import ARCHS, ArchFamily, ModelBundle, count_params
from .hf_common import make_config, transformers

_IMAGE = {"image_size": 28, "num_channels": 1, "num_labels": 10}

SMALL_DEFAULTS: dict[str, dict[str, Any]] = {
    "vit": {
        **_IMAGE,
        "patch_size": 4,
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 192,
    },
    "deit": {
        **_IMAGE,
        "patch_size": 4,
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 192,
        "architectures": ["DeiTForImageClassification"],
    },
    "swin": {**_IMAGE, "patch_size": 2, "embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4], "window_size": 7},
    "convnext": {
        "num_channels": 1,
        "num_labels": 10,
        "patch_size": 2,
        "hidden_sizes": [32, 64, 128],
        "depths": [2, 2, 2],
        "num_stages": 3,
        "image_size": 28,
    },
    "poolformer": {
        "num_channels": 1,
        "num_labels": 10,
        "hidden_sizes": [32, 64, 128, 160],
        "depths": [1, 1, 2, 1],
        "patch_size": 3,
        "stride": 2,
        "num_encoder_blocks": 4,
        "patch_sizes": [3, 3, 3, 3],
        "strides": [2, 2, 2, 1],
        "padding": [1, 1, 1, 1],
    },
    "cvt": {
        "num_channels": 1,
        "num_labels": 10,
        "embed_dim": [32, 64],
        "depth": [1, 2],
        "num_heads": [1, 2],
        "patch_sizes": [3, 3],
        "patch_stride": [2, 2],
        "patch_padding": [1, 1],
        "kernel_qkv": [3, 3],
        "padding_q": [1, 1],
        "padding_kv": [1, 1],
        "stride_kv": [2, 2],
        "stride_q": [1, 1],
        "mlp_ratio": [2.0, 2.0],
        "attention_drop_rate": [0.0, 0.0],
        "drop_rate": [0.0, 0.0],
        "drop_path_rate": [0.0, 0.0],
        "qkv_bias": [True, True],
        "cls_token": [False, True],
        "qkv_projection_method": ["dw_bn", "dw_bn"],
    },
    "pvt_v2": {
        **_IMAGE,
        "num_encoder_blocks": 2,
        "depths": [2, 2],
        "sr_ratios": [2, 1],
        "hidden_sizes": [32, 64],
        "patch_sizes": [3, 3],
        "strides": [2, 2],
        "num_attention_heads": [1, 2],
        "mlp_ratios": [4, 4],
    },
}
_TRANSFORMERS = {"vit", "deit", "swin", "cvt", "pvt_v2"}


class ImageClassifier(torch.nn.Module):
    """``pixel_values -> logits``: one input, one output, as every target expects."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf(pixel_values=pixel_values).logits


def _bundle(family: str, hf_model: torch.nn.Module) -> ModelBundle:
    cfg = hf_model.config
    size = getattr(cfg, "image_size", 28)
    size = size[0] if isinstance(size, (list, tuple)) else size
    spec = TensorSpec("pixel_values", ("batch", cfg.num_channels, size, size))
    return ModelBundle(
        module=ImageClassifier(hf_model).eval(),
        inputs=(spec,),
        family=family,
        task="classification",
        output_name="logits",
        is_transformer=family in _TRANSFORMERS,
        info={"hf_class": type(hf_model).__name__, "parameters": count_params(hf_model)},
    )


def _builder(family: str):
    def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
        if task not in (None, "classification"):
            raise ModelError(f"'{family}' models in edgekit are image classifiers; task '{task}' is not supported")
        tf = transformers()
        config = make_config(family, SMALL_DEFAULTS[family], overrides)
        torch.manual_seed(0)
        return _bundle(family, tf.AutoModelForImageClassification.from_config(config))

    return build


def _loader(family: str):
    def load(path: str, task: str | None) -> ModelBundle:
        tf = transformers()
        try:
            model = tf.AutoModelForImageClassification.from_pretrained(
                path, local_files_only=True, attn_implementation="eager"
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load an image classifier from '{path}': {str(exc).splitlines()[0]}") from None
        return _bundle(family, model)

    return load


for _name in SMALL_DEFAULTS:
    ARCHS.add(
        _name,
        ArchFamily(_name, _builder(_name), f"HF {_name} image classifier", _loader(_name), ("classification",)),
    )
