"""The sweep file: models x targets x precisions x devices, as a grid or an explicit list of jobs.

Typed and frozen like a recipe (through :mod:`edgekit.config`): unknown keys are rejected with a "did you mean",
and every error names the file and the dotted key. Paths (recipe files, checkpoint directories) are relative to the
sweep file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..config import from_dict
from ..errors import RecipeError, did_you_mean
from ..recipe import DataSpec, Estimator, Precision, Quantizer


@dataclass(frozen=True)
class ModelEntry:
    """One model: a ``recipe`` file, a model ``source`` (HF checkpoint dir, architecture name or
    ``package.module:factory``, with ``config``), or both (the source replaces the recipe's model)."""

    recipe: str | None = None
    source: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.recipe is None and self.source is None:
            raise ValueError("a model needs a recipe file or a source (architecture, checkpoint dir, module:factory)")

    @property
    def label(self) -> str:
        """The model's name in job ids and the report: ``name``, else the recipe's stem, else the source's."""
        if self.name:
            return self.name
        if self.recipe:
            return Path(self.recipe).stem
        src = str(self.source).rstrip("/")
        return re.split(r"[/:]", src)[-1] or src


@dataclass(frozen=True)
class Overrides:
    """Recipe settings changed for every job (sweep level) or one job (``jobs[i].overrides``); unset keys keep
    the recipe's value. ``reduced`` runs the recipe in reduced mode (edgekit/reduced.py); ``benchmark: false``
    skips latency measurement."""

    estimator: Estimator | None = None
    quantizer: Quantizer | None = None
    calibration: DataSpec | None = None
    validation: DataSpec | None = None
    calib_samples: int | None = None
    val_samples: int | None = None
    budget: float | None = None
    iterations: int | None = None
    warmup: int | None = None
    threads: int | None = None
    reduced: bool | None = None
    benchmark: bool | None = None

    def __post_init__(self) -> None:
        for key in ("calib_samples", "val_samples", "iterations", "threads"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ValueError(f"{key} must be positive, got {value}")

    def over(self, base: Overrides) -> Overrides:
        """These overrides on top of ``base`` (keys set here win)."""
        return Overrides(**{f.name: _first(getattr(self, f.name), getattr(base, f.name)) for f in fields(self)})


def _first(a: Any, b: Any) -> Any:
    return b if a is None else a


@dataclass(frozen=True)
class Resources:
    """What one job needs: Ray schedules by it (``memory_gb`` becomes Ray's ``memory``); the local executor sizes
    its pool by ``num_cpus`` and gives each job that many threads.

    ``train_workers`` N >= 1 (Ray only): a recipe's ``train:`` stage runs data-parallel (torch DDP through Ray
    Train) over N workers, each with ``num_cpus`` CPUs and ``num_gpus`` GPUs (NCCL; gloo on CPUs when 0); the
    job's own task then holds no GPU, so the cluster needs ``num_cpus`` more CPUs than the workers' for it."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_gb: float | None = None
    train_workers: int = 0

    def __post_init__(self) -> None:
        if self.num_cpus <= 0 or self.num_gpus < 0 or (self.memory_gb is not None and self.memory_gb <= 0):
            raise ValueError("resources need num_cpus > 0, num_gpus >= 0 and memory_gb > 0")
        if self.train_workers < 0:
            raise ValueError(f"resources.train_workers must be >= 0, got {self.train_workers}")


@dataclass(frozen=True)
class DeviceSpec:
    """A benchmark device: ``url`` as ``edgekit bench --device`` takes it (local, ssh://user@host, adb[:serial]).
    A job bound to a device benchmarks there and holds the device for the whole job, so each device runs one
    benchmark at a time (under Ray through the custom resource ``device:<name>``)."""

    name: str
    url: str = "local"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"device name '{self.name}' may only use letters, digits, '_', '.' and '-'")

    @property
    def resource(self) -> str:
        return f"device:{self.name}"


@dataclass(frozen=True)
class JobEntry:
    """One job of an explicit list; ``model`` names an entry of ``models`` (its name or label)."""

    model: str
    target: str | None = None
    precision: Precision | None = None
    device: str | None = None
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True)
class SweepSpec:
    """``jobs`` empty: the grid models x targets x precisions x devices. An empty ``targets`` (or
    ``precisions``) does not split that axis: the job runs the recipe's own targets (or precisions)."""

    name: str
    models: tuple[ModelEntry, ...]
    targets: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = ()
    devices: tuple[DeviceSpec, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)
    resources: Resources = field(default_factory=Resources)
    target_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: tuple[JobEntry, ...] = ()

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a sweep needs at least one model")
        labels = [m.label for m in self.models]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"model names must be unique, '{dup[0]}' repeats: give one of them a name")
        devices = [d.name for d in self.devices]
        if len(set(devices)) != len(devices):
            raise ValueError("device names must be unique")
        for j in self.jobs:
            _require_member("model", j.model, labels)
            if j.device is not None:
                _require_member("device", j.device, devices)

    def model(self, label: str) -> ModelEntry:
        return next(m for m in self.models if m.label == label)

    def device(self, name: str | None) -> DeviceSpec | None:
        return None if name is None else next(d for d in self.devices if d.name == name)


def _require_member(kind: str, name: str, names: list[str]) -> None:
    """A job refers to a model or device by name: that name must be declared in the sweep."""
    if name not in names:
        raise ValueError(f"job {kind} '{name}' is not one of the {kind}s{did_you_mean(name, names)}")


def sweep_from_dict(data: Any, where: str = "sweep") -> SweepSpec:
    return from_dict(SweepSpec, data, where)


def load_sweep(path: str | os.PathLike[str]) -> tuple[SweepSpec, Path]:
    """Load and validate a sweep file; returns the spec and the folder its relative paths are resolved from."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"sweep file '{p}' not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{p}: a sweep file is a mapping (name, models, targets, precisions, ...)")
    data.setdefault("name", p.stem)
    return sweep_from_dict(data, p.name), p.resolve().parent
