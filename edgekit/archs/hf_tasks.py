"""HF tasks edgekit can export: which Auto class loads a checkpoint for it and which one-tensor output it has.

A task is named by its Hugging Face pipeline name (``image-classification``, ``text-classification``,
``feature-extraction``, ``image-feature-extraction``, ``text-generation``); edgekit's own task words
(``classification``, ``embedding``, ``next-token``) are accepted as aliases and resolved by the checkpoint's
modality (an image or a text model). ``ModelBundle.task`` always carries edgekit's word, so metrics, training
objectives and data sources keep working unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ModelError
from ..registry import Registry
from .hf_text import SentenceEmbedder

VISION, TEXT = "vision", "text"


class Logits(torch.nn.Module):
    """``inputs -> logits`` of an HF classification head (image or text)."""

    def __init__(self, hf_model: torch.nn.Module, input_names: tuple[str, ...]):
        super().__init__()
        self.hf, self.names = hf_model, input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.hf(**dict(zip(self.names, inputs))).logits


class VisionFeatures(torch.nn.Module):
    """``pixel_values -> embedding``: the model's pooled output, else the mean of its last hidden state."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.hf(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            states = out.last_hidden_state
            # tokens [B, N, D] average over N; feature maps [B, C, H, W] over H and W
            pooled = states.mean(dim=(2, 3)) if states.dim() == 4 else states.mean(dim=1)
        return pooled.flatten(1)


class PrefillNextToken(torch.nn.Module):
    """``(input_ids, attention_mask) -> [batch, vocab]``: the causal LM's prefill logits at the last real token
    of each right-padded prompt, i.e. the distribution of the first generated token.

    The whole model runs (so model-specific logit scaling and soft-capping stay in the graph), then the row at
    ``sum(attention_mask) - 1`` is gathered."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.hf(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        last = (attention_mask.sum(1) - 1).clamp(min=0)
        return logits.gather(1, last.view(-1, 1, 1).expand(-1, 1, logits.shape[-1])).squeeze(1)


@dataclass(frozen=True)
class HFTask:
    name: str  # the HF pipeline name
    modality: str  # VISION (pixel_values) or TEXT (input_ids, attention_mask)
    auto_class: str  # transformers Auto class that loads a checkpoint for the task
    edgekit_task: str  # ModelBundle.task: classification | embedding | next-token
    output_name: str
    wrap: Callable[[torch.nn.Module, tuple[str, ...]], torch.nn.Module]
    # endings of config.json ``architectures`` class names that imply this task
    suffixes: tuple[str, ...] = ()


HF_TASKS: Registry[HFTask] = Registry("HF task")
for _task in (
    HFTask(
        "image-classification",
        VISION,
        "AutoModelForImageClassification",
        "classification",
        "logits",
        Logits,
        ("ForImageClassification", "ForImageClassificationWithTeacher"),
    ),
    HFTask(
        "image-feature-extraction",
        VISION,
        "AutoModel",
        "embedding",
        "embedding",
        lambda m, _names: VisionFeatures(m),
        ("VisionModel", "Model", "ForPreTraining", "ForMaskedImageModeling"),
    ),
    HFTask(
        "text-classification",
        TEXT,
        "AutoModelForSequenceClassification",
        "classification",
        "logits",
        Logits,
        ("ForSequenceClassification",),
    ),
    HFTask(
        "feature-extraction",
        TEXT,
        "AutoModel",
        "embedding",
        "embedding",
        lambda m, _names: SentenceEmbedder(m),
        ("TextModel", "Model", "ForMaskedLM", "ForPreTraining"),
    ),
    HFTask(
        "text-generation",
        TEXT,
        "AutoModelForCausalLM",
        "next-token",
        "logits",
        lambda m, _names: PrefillNextToken(m),
        ("ForCausalLM", "LMHeadModel"),
    ),
):
    HF_TASKS.add(_task.name, _task)

# edgekit's task words (and common spellings) -> the HF task, per modality
ALIASES: dict[str, dict[str, str]] = {
    "classification": {VISION: "image-classification", TEXT: "text-classification"},
    "embedding": {VISION: "image-feature-extraction", TEXT: "feature-extraction"},
    "sentence-embedding": {TEXT: "feature-extraction"},
    "sentence-similarity": {TEXT: "feature-extraction"},
    "next-token": {TEXT: "text-generation"},
    "causal-lm": {TEXT: "text-generation"},
    "lm": {TEXT: "text-generation"},
}


def task_names() -> list[str]:
    return [*HF_TASKS.names(), *ALIASES]


def resolve_task(name: str, modality: str, where: str) -> HFTask:
    """The HF task for ``--task NAME`` on a checkpoint of ``modality``; one-line ModelError if it does not fit."""
    if name in ALIASES:
        if modality not in ALIASES[name]:
            raise ModelError(f"{where}: task '{name}' needs a text model; this checkpoint is a {modality} model")
        name = ALIASES[name][modality]
    if name not in HF_TASKS:
        raise ModelError(f"{where}: unknown task '{name}'; pass --task one of {', '.join(task_names())}")
    task = HF_TASKS.get(name)
    if task.modality != modality:
        raise ModelError(f"{where}: task '{name}' is for {task.modality} models; this checkpoint is a {modality} model")
    return task


def task_from_architecture(arch: str, modality: str) -> HFTask | None:
    """The task implied by an ``architectures`` class name (``XLMRobertaForSequenceClassification``)."""
    best: tuple[int, HFTask] | None = None
    for name in HF_TASKS:
        task = HF_TASKS.get(name)
        if task.modality != modality:
            continue
        for suffix in task.suffixes:  # the longest matching suffix wins (ForImageClassification over Model)
            if arch.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), task)
    return None if best is None else best[1]
