"""Resolve a model source (HF checkpoint dir, architecture name, or ``package.module:factory``)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch

from ..checks import require_finite_weights
from ..errors import EdgekitError, ModelError, RecipeError, did_you_mean, one_line
from ..recipe import ModelSpec, TensorSpec
from .base import ARCHS, ModelBundle, count_params

_FAMILIES_LOADED = False


def _ensure_families() -> None:
    # Importing a family module registers it; kept lazy so `import edgekit` stays light.
    global _FAMILIES_LOADED
    if not _FAMILIES_LOADED:
        from . import crossvit, fmvit, hf_decoder, hf_text, hf_vision, packaged, reparam_families, tnt  # noqa: F401

        _FAMILIES_LOADED = True


def arch_names() -> list[str]:
    _ensure_families()
    return ARCHS.names()


def load_model(spec: ModelSpec, inputs: tuple[TensorSpec, ...] | None = None) -> ModelBundle:
    """Build or load the model named by ``spec``; ``inputs`` (from the recipe) override the family's spec.

    Building runs code and reads files the user supplied (a config, a checkpoint's weights, a factory), so any
    failure there is the model's, reported as a ModelError naming the source; the weights must be finite."""
    _ensure_families()
    source = spec.source
    try:
        bundle = _resolve(source, spec, inputs)
    except (EdgekitError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        first = one_line(exc)
        raise ModelError(
            f"model '{source}' could not be built or loaded ({type(exc).__name__}: {first}); check its config "
            f"{spec.config or '{}'} and files (config.json matching the weights, complete .safetensors)"
        ) from None
    require_finite_weights(bundle.module, f"model '{source}'")
    if inputs:
        bundle.inputs = tuple(inputs)
    bundle.module.eval()
    return bundle


def _resolve(source: str, spec: ModelSpec, inputs: tuple[TensorSpec, ...] | None) -> ModelBundle:
    if ":" in source and not os.path.exists(source) and not source.startswith(("hf:", "/")):
        return _from_factory(source, spec, inputs)
    if _looks_like_path(source):
        return _from_checkpoint(Path(source), spec)
    name = source.removeprefix("hf:")
    if name not in ARCHS:
        raise ModelError(
            f"model '{source}' is neither an existing directory nor a known architecture"
            f"{did_you_mean(name, ARCHS.names())}"
        )
    return ARCHS.get(name).build(dict(spec.config), edgekit_task(spec.task))


def _looks_like_path(source: str) -> bool:
    return os.sep in source or source.startswith(".") or os.path.exists(source)


def _from_checkpoint(path: Path, spec: ModelSpec) -> ModelBundle:
    if not path.exists():
        raise ModelError(
            f"model path '{path}' does not exist; pass an HF checkpoint directory, an architecture "
            f"name ({', '.join(ARCHS.names())}) or package.module:factory"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelError(f"'{path}' has no config.json: it is not a Hugging Face checkpoint directory")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type", "")
    except json.JSONDecodeError as exc:
        raise ModelError(f"{config_file}: not valid JSON ({exc})") from None
    family = ARCHS.get(model_type) if model_type in ARCHS else None
    if (
        family is not None
        and family.load is not None
        and (spec.task is None or edgekit_task(spec.task) in family.tasks)
    ):
        bundle = family.load(str(path), edgekit_task(spec.task))  # the family's tuned defaults
    else:  # any other HF checkpoint: task from config.json architectures or --task
        from . import hf_auto

        bundle = hf_auto.load(path, spec.task)
    if bundle.image_processor_dir is None and (path / "preprocessor_config.json").is_file():
        bundle.image_processor_dir = str(path)  # the images data source preprocesses with it
    bundle.info["checkpoint"] = str(path.resolve())
    return bundle


def edgekit_task(task: str | None) -> str | None:
    """edgekit's word (classification | embedding | next-token) for a task given as that word or an HF task
    name (``image-classification``, ``feature-extraction``, ``text-generation``, ...); unknown names unchanged."""
    if task is None:
        return None
    from .hf_tasks import ALIASES, HF_TASKS

    hf_name = next(iter(ALIASES[task].values())) if task in ALIASES else task
    return HF_TASKS.get(hf_name).edgekit_task if hf_name in HF_TASKS else task


def _from_factory(source: str, spec: ModelSpec, inputs: tuple[TensorSpec, ...] | None) -> ModelBundle:
    module_name, _, attr = source.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # the module is the user's code: anything it raises at import is its failure
        raise ModelError(f"cannot import factory '{source}': {type(exc).__name__}: {exc}") from None
    try:
        model = factory(**spec.config)
    except TypeError as exc:
        raise ModelError(f"factory '{source}' rejected config {spec.config}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"factory '{source}' raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"factory '{source}' returned {type(model).__name__}, not a torch.nn.Module")
    declared = inputs or getattr(model, "edgekit_inputs", None)
    if not declared:
        raise RecipeError(
            f"model '{source}' is a custom module: declare its inputs in the recipe "
            "(inputs: [{name: x, shape: [batch, 3, 32, 32]}]) or with --input x:batch,3,32,32"
        )
    return ModelBundle(
        model.eval(),
        tuple(declared),
        family="custom",
        task=edgekit_task(spec.task) or "classification",
        is_transformer=False,
        info={"factory": source, "parameters": count_params(model)},
    )
