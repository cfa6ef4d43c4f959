"""The typed state one run carries from stage to stage (:mod:`.stages`): what the recipe asked for, and what
each stage has produced so far. A stage reads the fields earlier stages set and sets its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archs import ModelBundle
from ..data import DataSet
from ..errors import EdgekitError
from ..quant.simulated import Quantized, Simulation
from ..recipe import DataSpec, Precision, Recipe
from ..targets.base import Artifact
from .plan import PlanItem


@dataclass
class Built:
    """One compiled artifact, waiting for validation: the plan item and precision it was built for, and the
    simulated program it is compared with."""

    item: PlanItem
    precision: Precision
    artifact: Artifact
    sim: Simulation | None


@dataclass
class RunContext:
    recipe: Recipe
    out: Path  # where the run lands; a stage writes into ``tmp`` (the run directory being built)
    tmp: Path | None = None
    progress: bool = True
    resume: bool = False
    benchmark: bool = True
    log: Callable[..., Any] = print
    plan: list[PlanItem] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # rows of targets not built (planned away)
    # load
    bundle: ModelBundle | None = None
    names: list[str] = field(default_factory=list)
    val_spec: DataSpec | None = None
    val: DataSet | None = None
    metric: str = ""
    budget: float = 0.0
    probe: DataSet | None = None
    teacher: torch.nn.Module | None = None
    calib: DataSet | None = None
    # transforms, train
    applied: list[dict[str, Any]] = field(default_factory=list)
    train_info: dict[str, Any] | None = None
    # reference, quantize
    fp32_out: np.ndarray | None = None
    fp32_metric: float | None = None
    quantized: Quantized = field(default_factory=Quantized)
    sim_metric: float | None = None
    # compile, validate, diagnose, bench, report
    built: list[Built] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.recipe.validation.batch_size

    def model(self) -> ModelBundle:
        """The loaded model; a stage run before ``load`` is a programming error, said plainly."""
        if self.bundle is None or self.val is None:
            raise EdgekitError("run stage order: the 'load' stage has not run")
        return self.bundle

    def workdir(self) -> Path:
        if self.tmp is None:
            raise EdgekitError("run stage order: this stage writes into a run directory and the run has none")
        return self.tmp
