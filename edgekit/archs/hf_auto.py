"""Intake for any Hugging Face checkpoint directory whose ``model_type`` is not one of edgekit's families.

The task comes from ``--task`` or from config.json ``architectures`` (see hf_tasks); the checkpoint is loaded
with that task's Auto class and eager attention; the IO spec comes from the modality: ``pixel_values``
``(batch, C, H, W)`` with H and W from preprocessor_config.json (else the config's ``image_size``), or
``input_ids`` and ``attention_mask`` ``(batch, sequence)`` int64. The checkpoint's tokenizer and image
processor, when saved next to the weights, are what the text and ``images`` data sources preprocess with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelError, one_line
from ..recipe import TensorSpec
from .base import ModelBundle, count_params
from .hf_common import transformers
from .hf_patches import apply_patches
from .hf_tasks import TEXT, VISION, HFTask, resolve_task, task_from_architecture, task_names
from .hf_text import TEXT_INPUTS

DEFAULT_IMAGE_SIZE = 224  # what HF image processors default to when a checkpoint says nothing
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")
_PROCESSOR_FILE = "preprocessor_config.json"
# model types whose traced graph bakes the sequence length in (Funnel pools and shifts by it; a graph traced
# at one length fails at another): their text inputs are declared at this fixed length (the data default)
FIXED_SEQUENCE = {"funnel": 64}
# input names of the two modalities, as transformers' model classes declare them (``main_input_name``)
_MODALITIES = {"pixel_values": VISION, "input_ids": TEXT}


def has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in _TOKENIZER_FILES)


def image_processor_dir(path: Path) -> str | None:
    return str(path) if (path / _PROCESSOR_FILE).is_file() else None


def load(path: Path, task: str | None) -> ModelBundle:
    tf = transformers()
    where = f"'{path}'"
    try:
        config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{where}: transformers cannot read its config.json ({one_line(exc)})") from None
    modality = _modality(tf, config, where)
    hf_task = _task(config, modality, task, where)
    auto = getattr(tf, hf_task.auto_class)
    try:
        model = auto.from_pretrained(str(path), local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{where}: {hf_task.auto_class} cannot load this '{config.model_type}' checkpoint for task "
            f"'{hf_task.name}' ({one_line(exc)}); pass another --task ({', '.join(task_names())})"
        ) from None
    model.eval()
    patches = apply_patches(config.model_type, model)
    inputs = _vision_inputs(path, model.config) if modality == VISION else _text_inputs(config.model_type)
    names = tuple(s.name for s in inputs)
    return ModelBundle(
        hf_task.wrap(model, names).eval(),
        inputs,
        family=config.model_type,
        task=hf_task.edgekit_task,
        output_name=hf_task.output_name,
        is_transformer=_is_transformer(model.config),
        tokenizer_dir=str(path) if modality == TEXT and has_tokenizer(path) else None,
        image_processor_dir=image_processor_dir(path) if modality == VISION else None,
        label2id=_class_names(model.config) if hf_task.edgekit_task == "classification" else None,
        info={
            "hf_task": hf_task.name,
            "auto_class": hf_task.auto_class,
            "hf_class": type(model).__name__,
            "parameters": count_params(model),
            **_vocab(model.config),
            **({"patches": patches} if patches else {}),
        },
    )


def _modality(tf: Any, config: Any, where: str) -> str:
    """VISION or TEXT from the input name of the model class transformers maps this config to (its base model,
    else the class config.json names)."""
    if hasattr(config, "vision_config") and hasattr(config, "text_config"):
        raise ModelError(
            f"{where}: '{config.model_type}' takes images and text together; export one tower (e.g. save "
            f"{type(config).__name__.removesuffix('Config')}VisionModel.from_pretrained(DIR) to its own directory)"
        )
    classes = [tf.AutoModel._model_mapping.get(type(config), None)]
    classes += [getattr(tf, a, None) for a in getattr(config, "architectures", None) or []]
    found = [c for c in classes if c is not None]
    if not found:
        raise ModelError(
            f"{where}: transformers has no model class for config '{type(config).__name__}' "
            f"(model_type '{config.model_type}')"
        )
    main = getattr(found[0], "main_input_name", "input_ids")
    if main not in _MODALITIES:
        raise ModelError(
            f"{where}: '{config.model_type}' models take '{main}'; edgekit exports image (pixel_values) and "
            "text (input_ids) models"
        )
    return _MODALITIES[main]


def _task(config: Any, modality: str, task: str | None, where: str) -> HFTask:
    if task:
        return resolve_task(task, modality, where)
    archs = list(getattr(config, "architectures", None) or [])
    for arch in archs:
        found = task_from_architecture(arch, modality)
        if found is not None:
            return found
    said = f"its architectures {archs} name no task edgekit knows" if archs else "its config.json has no architectures"
    raise ModelError(f"{where}: {said}; pass --task ({', '.join(task_names())})")


def _vision_inputs(path: Path, config: Any) -> tuple[TensorSpec, ...]:
    h, w = _processor_size(path) or _config_size(config) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    channels = int(getattr(config, "num_channels", 3) or 3)
    return (TensorSpec("pixel_values", ("batch", channels, h, w)),)


def _text_inputs(model_type: str) -> tuple[TensorSpec, ...]:
    fixed = FIXED_SEQUENCE.get(model_type)
    if fixed is None:
        return TEXT_INPUTS
    return tuple(TensorSpec(s.name, ("batch", fixed), s.dtype) for s in TEXT_INPUTS)


def _processor_size(path: Path) -> tuple[int, int] | None:
    """The size the checkpoint's image processor emits: its crop size when it centre-crops, else its size."""
    file = path / _PROCESSOR_FILE
    if not file.is_file():
        return None
    try:
        cfg = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{file}: not valid JSON ({exc})") from None
    if cfg.get("do_center_crop") and cfg.get("crop_size"):
        return _hw(cfg["crop_size"])
    return _hw(cfg.get("size"))


def _hw(size: Any) -> tuple[int, int] | None:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        edge = size.get("shortest_edge")
        if edge:  # resize the short side then (usually) crop square: the model sees edge x edge
            return int(edge), int(edge)
    return None


def _config_size(config: Any) -> tuple[int, int] | None:
    return _hw(getattr(config, "image_size", None))


def _class_names(config: Any) -> dict[str, int] | None:
    """The config's label2id unless it is transformers' placeholder (LABEL_0, LABEL_1, ...)."""
    names = dict(getattr(config, "label2id", None) or {})
    if not names or all(k == f"LABEL_{v}" for k, v in names.items()):
        return None
    return {str(k): int(v) for k, v in names.items()}


def _is_transformer(config: Any) -> bool:
    return any(hasattr(config, k) for k in ("num_attention_heads", "num_heads", "n_head"))


def _vocab(config: Any) -> dict[str, int]:
    size = getattr(config, "vocab_size", None)
    return {"vocab_size": int(size)} if isinstance(size, int) else {}
