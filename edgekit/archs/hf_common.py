"""Shared helpers for Hugging Face transformers models (imported lazily: transformers is the [hf] extra)."""

from __future__ import annotations

from typing import Any

from ..errors import MissingBackendError, ModelError


def transformers():
    try:
        import transformers as tf
    except ImportError:
        raise MissingBackendError("hf models", "transformers", "hf") from None
    return tf


def make_config(model_type: str, defaults: dict[str, Any], overrides: dict[str, Any]):
    """An HF config for ``model_type`` with our small defaults, then the user's overrides, eager attention."""
    tf = transformers()
    params = {**defaults, **overrides}
    # HF configs accept any keyword silently; reject names the config class does not define.
    blank = tf.AutoConfig.for_model(model_type)
    known = set(blank.to_dict()) | set(getattr(blank, "attribute_map", {})) | {"num_labels", "id2label", "label2id"}
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise ModelError(
            f"'{model_type}' config has no field(s) {unknown}; see transformers' {type(blank).__name__} for the names"
        )
    try:
        config = tf.AutoConfig.for_model(model_type, **params)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"cannot build a '{model_type}' config from {params}: {exc}") from None
    # Eager attention exports to plain MatMul/Softmax on every target (SDPA does not on all of them).
    config._attn_implementation = "eager"
    return config
