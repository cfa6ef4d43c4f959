"""The recipe schema: typed, frozen, round-trips to YAML, rejects unknown keys.

A recipe states only what differs from the defaults below; the architecture family fills in the
rest (input spec, task metric) when the model is built.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .checks import require_counts, require_finite_numbers
from .config import from_dict, to_dict
from .errors import RecipeError
from .presets import expand_preset


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Estimator(str, enum.Enum):
    """How the range of a tensor is estimated from calibration data."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    MSE = "mse"
    ENTROPY = "entropy"


class Quantizer(str, enum.Enum):
    """Who makes the INT8 program every target lowers: edgekit (its graph quantizer: ``torch.export`` + PT2E,
    annotated by op pattern, one set of encodings), Intel Neural Compressor (its PT2E program, lowered by edgekit),
    or each runtime's own quantizer (``native``)."""

    EDGEKIT = "edgekit"
    NATIVE = "native"
    NEURAL_COMPRESSOR = "neural-compressor"

    @classmethod
    def _missing_(cls, value: object) -> Quantizer | None:
        # "graph" named edgekit's graph quantizer while a module-swapping quantizer was the default; it is the only
        # one now, and recipes and run directories written then still load
        return cls.EDGEKIT if value == "graph" else None


class Metric(str, enum.Enum):
    AUTO = "auto"  # top1 when the data has labels and the model classifies, cosine otherwise
    TOP1 = "top1"
    COSINE = "cosine"


@dataclass(frozen=True)
class TensorSpec:
    """One model input. Dynamic axes are given by name, e.g. ``shape: [batch, 1, 28, 28]``."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16", "int64", "int32", "bool"):
            raise ValueError(
                f"dtype '{self.dtype}' of input '{self.name}' is not one of float32, float16, int64, int32, bool"
            )

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete_shape(self, batch: int = 1, **dims: int) -> tuple[int, ...]:
        """The shape with named axes filled in (``batch`` and any other named dimension)."""
        sizes = {"batch": batch, **dims}
        out = []
        for d in self.shape:
            if isinstance(d, int):
                out.append(d)
            elif d in sizes:
                out.append(sizes[d])
            else:
                raise InputSpecMissing(self.name, d)
        return tuple(out)


class InputSpecMissing(RecipeError):
    def __init__(self, name: str, dim: str):
        super().__init__(f"input '{name}': no size given for dynamic axis '{dim}'")


@dataclass(frozen=True)
class ModelSpec:
    """``source`` is an HF checkpoint directory, an architecture name (random init from ``config``), or
    ``package.module:factory`` returning an ``nn.Module``."""

    source: str
    config: dict[str, Any] = field(default_factory=dict)
    task: str | None = None  # classification | embedding; default from the architecture
    weights: str | None = None  # a state_dict (.pt) written by a training run (RUN/model/weights.pt)


@dataclass(frozen=True)
class DataSpec:
    """A data set: a registered source (``fashion-mnist``, ``digits``, ``random``, ``npz``, ``text-csv``)."""

    source: str
    split: str = "test"
    samples: int | None = None
    batch_size: int = 64
    path: str | None = None
    seed: int = 0
    max_length: int = 64

    def __post_init__(self) -> None:
        require_counts(samples=self.samples, batch_size=self.batch_size, max_length=self.max_length)

    @classmethod
    def parse(cls, text: str, **kw: Any) -> DataSpec:
        """Parse the CLI form: ``fashion-mnist[:split]``, ``digits``, ``random``, or a ``.npz``/``.csv`` path."""
        if text.endswith(".npz"):
            return cls(source="npz", path=text, **kw)
        if text.endswith(".csv"):
            return cls(source="text-csv", path=text, **kw)
        source, _, split = text.partition(":")
        return cls(source=source, **({"split": split} if split else {}), **kw)


@dataclass(frozen=True)
class TransformSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DistillSpec:
    """Knowledge distillation from the original model (before the train-phase transforms).

    ``outputs``: weight of the output loss (KL at ``temperature`` for classifiers, MSE for embeddings);
    ``hidden``: weight of the MSE between every transformer layer's output; ``labels``: weight of the
    cross-entropy on the data's labels (classifiers with labelled data only).
    """

    outputs: float = 1.0
    hidden: float = 0.0
    labels: float = 0.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        require_finite_numbers(
            outputs=self.outputs, hidden=self.hidden, labels=self.labels, temperature=self.temperature
        )
        if min(self.outputs, self.hidden, self.labels) < 0 or self.outputs + self.hidden + self.labels == 0:
            raise ValueError("distill weights must be >= 0 and not all zero (outputs, hidden, labels)")
        if self.temperature <= 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class TrainSpec:
    """Short training on real data: from scratch / fine-tuning on labels, or distillation (``distill``).

    Runs after the ``train``-phase transforms (clipped softmax, gated attention, UN, ...), so the model
    learns with them. ``steps`` overrides ``epochs``. A checkpoint is written every ``checkpoint_every`` steps
    and on Ctrl-C; ``edgekit retrain --resume`` continues from it.
    """

    data: DataSpec
    epochs: float = 1.0
    steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    warmup_fraction: float = 0.05
    seed: int = 0
    distill: DistillSpec | None = None
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        require_counts(steps=self.steps, batch_size=self.batch_size)
        require_counts(0, checkpoint_every=self.checkpoint_every)
        require_finite_numbers(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay)
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size <= 0:
            raise ValueError("train needs epochs > 0, lr > 0 and batch_size > 0")
        if self.checkpoint_every < 0:
            raise ValueError("train.checkpoint_every must be >= 0 (0: only on interrupt)")


class RevertMethod(str, enum.Enum):
    """How accuracy-aware quantization measures a layer's sensitivity."""

    ONE_AT_A_TIME = "one-at-a-time"  # quantize only that layer: its metric drop
    DROP_ONE = "drop-one"  # quantize every layer but that one: the metric it gives back


class RankMetric(str, enum.Enum):
    """What accuracy-aware quantization scores (default: the validation metric)."""

    TOP1 = "top1"  # top-1 % against labels (cosine when the ranking data has none)
    COSINE = "cosine"  # mean cosine to the FP32 outputs
    AGREEMENT = "agreement"  # % of samples whose top-1 class is FP32's: a classifier's goal, no labels needed


@dataclass(frozen=True)
class AccuracyAwareSpec:
    """When the simulated INT8 model drops more than ``max_drop`` (default: the validation budget) on ``data``
    (default: another seeded draw of the calibration source, never the validation set), rank the quantized layers by
    sensitivity and keep the most sensitive in FP32, one at a time, until the drop holds or ``max_layers`` are
    kept. Kept layers leave the encodings, so every target runs them in float. ``metric`` (default: the validation
    metric) is what the drop is measured in; ``agreement`` is top-1 agreement with FP32 in percent."""

    max_drop: float | None = None
    method: RevertMethod = RevertMethod.DROP_ONE
    metric: RankMetric | None = None
    max_layers: int = 8
    data: DataSpec | None = None
    samples: int = 500

    def __post_init__(self) -> None:
        require_finite_numbers(max_drop=self.max_drop)
        require_counts(max_layers=self.max_layers, samples=self.samples)
        if self.max_drop is not None and self.max_drop < 0:
            raise ValueError(f"accuracy_aware.max_drop must be >= 0, got {self.max_drop}")
        if self.max_layers <= 0 or self.samples <= 0:
            raise ValueError("accuracy_aware needs max_layers > 0 and samples > 0")


@dataclass(frozen=True)
class IncSpec:
    """Options of ``quantizer: neural-compressor`` (``quantization.inc``).

    ``autotune``: INC's ``autotune`` over a small ordered set of static configs (activation observer
    minmax/kl x asymmetric/symmetric), stopping at the first within the validation budget, at most
    ``max_trials``. ``smooth_quant``: INC 3.10 runs SmoothQuant only through intel_extension_for_pytorch, whose
    output is an IPEX model, not a PT2E program; no target can lower that, so a value is rejected at load.
    """

    smooth_quant: float | None = None
    autotune: bool = False
    max_trials: int = 4

    def __post_init__(self) -> None:
        if self.smooth_quant is not None:
            raise ValueError(
                "inc.smooth_quant: Neural Compressor 3.10 applies SmoothQuant only through "
                "intel_extension_for_pytorch (an IPEX model, not a PT2E program edgekit can lower to "
                "onnx/openvino/tflite); remove it, or use quantizer: edgekit"
            )
        if self.max_trials <= 0:
            raise ValueError(f"inc.max_trials must be positive, got {self.max_trials}")


class WeightClipping(str, enum.Enum):
    """How a weight's per-channel int8 range is chosen: its min/max, or the clip that minimises the weight MSE."""

    MINMAX = "minmax"
    MSE = "mse"


class RoundingScope(str, enum.Enum):
    """Which layers Hessian-aware weight rounding re-rounds."""

    ALL = "all"  # every per-channel conv/linear with more calibration rows than inputs
    INPUT = "input"  # only the layers that read a model input (a CNN's stem): the largest gain, the least time


@dataclass(frozen=True)
class WeightRoundingSpec:
    """Hessian-aware (GPTQ) rounding of int8 weights (``quantization.weight_rounding``, graph quantizer): after
    convert, the chosen layers' weights are rounded one input at a time, each rounding error spread over the inputs
    not yet rounded by the inverse of the layer's input correlation H = sum x xᵀ on the calibration data (damped by
    ``damp`` times its mean diagonal), on the observer's scales. ``layers: all`` (default) re-rounds every per-channel
    conv and linear with more calibration rows than inputs; ``input`` only the layers that read a model input (an
    image CNN's stem)."""

    layers: RoundingScope = RoundingScope.ALL
    damp: float = 0.01

    def __post_init__(self) -> None:
        require_finite_numbers(damp=self.damp)
        if self.damp <= 0:
            raise ValueError(f"weight_rounding.damp must be > 0, got {self.damp}")


class SmoothFold(str, enum.Enum):
    """SmoothQuant, where 1/s cannot be folded exactly into the activation's producer (a LayerNorm or linear whose
    output only linears read): ``skip`` leaves that group unsmoothed; ``multiply`` inserts a per-channel multiply
    (x * 1/s before the linears, or x * s on the producer's other readers, such as a post-LN residual)."""

    SKIP = "skip"
    MULTIPLY = "multiply"


SMOOTH_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True)
class SmoothQuantSpec:
    """SmoothQuant (``quantization.smooth_quant``, edgekit quantizer): per input channel j of a group of linears that
    read one activation, s_j = max|X_j|^alpha / max|W_j|^(1-alpha); X / s is folded into the producer and W * s into
    the linears, exactly in FP32, before calibration. ``alpha: auto`` picks per group the alpha of ``grid`` (or no
    smoothing) with the lowest quantized-output MSE on calibration data; ``per_layer`` maps module-name globs of the
    group's linears to their own alpha, ``auto``, or null (leave the group unsmoothed); the first match wins."""

    alpha: float | str = 0.5
    per_layer: dict[str, float | str | None] = field(default_factory=dict)
    grid: tuple[float, ...] = SMOOTH_GRID
    unfoldable: SmoothFold = SmoothFold.SKIP

    def __post_init__(self) -> None:
        named = {"alpha": self.alpha, **{f"per_layer.{k}": v for k, v in self.per_layer.items()}}
        for key, value in named.items():
            if isinstance(value, str) and value != "auto":
                raise ValueError(f"smooth_quant.{key} must be a number in [0, 1] or 'auto', got {value!r}")
        alphas = {k: v for k, v in named.items() if v is not None and not isinstance(v, str)}
        alphas |= {f"grid[{i}]": v for i, v in enumerate(self.grid)}
        for key, value in alphas.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"smooth_quant.{key} must be a number in [0, 1], got {value!r}")
        if not self.grid:
            raise ValueError("smooth_quant.grid needs at least one alpha (e.g. [0.3, 0.5, 0.7])")


# estimator -> Neural Compressor's activation observer ("minmax" is its moving-average min/max)
INC_ACT_ALGO = {"minmax": "minmax", "entropy": "kl"}


@dataclass(frozen=True)
class QuantSpec:
    estimator: Estimator = Estimator.MINMAX
    percentile: float = 99.99
    per_channel: bool = True
    # None (default): symmetric only when a requested target needs it (TensorRT), so one set serves all targets
    activation_symmetric: bool | None = None
    bits: int = 8
    calibration: DataSpec | None = None
    quantizer: Quantizer = Quantizer.EDGEKIT
    # graph nodes left in float, by the module that produced them: name globs ("*.classifier") or type names
    # ("type:Conv2d")
    ignore: tuple[str, ...] = ()
    scale_reparam: bool = False  # RepQ-ViT-style per-channel rescaling of post-LayerNorm activations
    # also quantize every quantized op's output, in every profile: "everything quantized", as in the outlier papers'
    # W8A8 setting, where residual-stream outliers hit the grid
    quantize_outputs: bool = False
    preset: str | None = None  # a named setting filled in at load (see edgekit.presets); explicit keys win
    accuracy_aware: AccuracyAwareSpec | None = None  # keep the most sensitive nodes in FP32 until the budget holds
    inc: IncSpec | None = None  # options of quantizer: neural-compressor
    # passes of edgekit's quantizer: SmoothQuant before calibration ({alpha: 0.5} or a number), bias correction after
    # convert, MSE-optimal per-channel weight clipping, Hessian-aware weight rounding after convert ({} or
    # {layers: input})
    smooth_quant: SmoothQuantSpec | float | None = None
    bias_correction: bool = False
    weight_clipping: WeightClipping = WeightClipping.MINMAX
    weight_rounding: WeightRoundingSpec | None = None

    def __post_init__(self) -> None:
        if self.bits != 8:
            raise ValueError("only 8-bit integer quantization is supported by the int8 stage (bits: 8)")
        if not 50.0 < self.percentile <= 100.0:  # NaN fails this too
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")
        if self.accuracy_aware is not None and self.quantizer is Quantizer.NATIVE:
            raise ValueError("accuracy_aware works on edgekit's encodings; remove it or set quantizer: edgekit")
        if self.quantizer is Quantizer.NEURAL_COMPRESSOR:
            self._check_inc()
        elif self.inc is not None:
            raise ValueError("quantization.inc needs quantizer: neural-compressor")
        if isinstance(self.smooth_quant, (int, float)) and not isinstance(self.smooth_quant, bool):
            object.__setattr__(self, "smooth_quant", SmoothQuantSpec(alpha=float(self.smooth_quant)))
        if self.quantizer is not Quantizer.EDGEKIT:
            self._check_edgekit_only()

    def _check_edgekit_only(self) -> None:
        """SmoothQuant, bias correction, weight clipping and rounding, scale reparameterization, output quantization
        and the ignore list are edgekit's passes and annotation choices on its captured graph."""
        why = "it is part of edgekit's quantizer; set quantizer: edgekit"
        own = ("smooth_quant", "bias_correction", "weight_rounding", "scale_reparam", "quantize_outputs", "ignore")
        self._refuse(self.quantizer.value, dict.fromkeys(own, why))
        if self.weight_clipping is not WeightClipping.MINMAX:
            raise ValueError(f"quantizer {self.quantizer.value} does not take quantization.weight_clipping: {why}")

    def _check_inc(self) -> None:
        if self.estimator.value not in INC_ACT_ALGO:
            raise ValueError(
                f"quantizer neural-compressor: estimator '{self.estimator.value}' has no Neural Compressor "
                f"observer; use {' or '.join(INC_ACT_ALGO)}"
            )
        if self.accuracy_aware is not None:
            raise ValueError(
                "quantizer neural-compressor does not take quantization.accuracy_aware: use inc: {autotune: true} "
                "(INC's own accuracy-driven tuning)"
            )

    def _refuse(self, quantizer: str, unsupported: dict[str, str]) -> None:
        """Reject the first option in ``unsupported`` (key -> why) that is set, naming the quantizer."""
        for key, why in unsupported.items():
            if getattr(self, key):
                raise ValueError(f"quantizer {quantizer} does not take quantization.{key}: {why}")


@dataclass(frozen=True)
class TargetSpec:
    name: str
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationSpec:
    data: DataSpec | None = None
    metric: Metric = Metric.AUTO
    budget: float | None = None  # max drop of the metric vs FP32: top-1 points, or cosine
    batch_size: int = 100

    def __post_init__(self) -> None:
        require_finite_numbers(budget=self.budget)
        require_counts(batch_size=self.batch_size)


@dataclass(frozen=True)
class BenchSpec:
    warmup: int = 20
    iterations: int = 200
    threads: int = 2
    batch_size: int = 1

    def __post_init__(self) -> None:
        require_counts(iterations=self.iterations, threads=self.threads, batch_size=self.batch_size)
        require_counts(0, warmup=self.warmup)


# A recipe's name becomes a directory under the output root, so it must stay one path component there.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+:-][A-Za-z0-9._+:-]{0,99}")


def name_from(text: str, fallback: str = "model") -> str:
    """A recipe name derived from free text (a model path): unsafe characters become '-', none left: ``fallback``."""
    name = re.sub(r"[^A-Za-z0-9._+:-]+", "-", text).lstrip(".-")[:100]
    return name if SAFE_NAME.fullmatch(name) else fallback


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelSpec
    targets: tuple[TargetSpec, ...] = (TargetSpec("onnx"),)
    description: str = ""
    inputs: tuple[TensorSpec, ...] | None = None
    train: TrainSpec | None = None
    transforms: tuple[TransformSpec, ...] = ()
    quantization: QuantSpec = field(default_factory=QuantSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    benchmark: BenchSpec = field(default_factory=BenchSpec)

    def __post_init__(self) -> None:
        if not SAFE_NAME.fullmatch(self.name):
            raise ValueError(
                f"name {self.name!r} is not a plain name (letters, digits, '.', '_', '-', ':', '+'; no '/', "
                f"not starting with '.', at most 100 characters): it names the run directory runs/NAME"
            )
        if not self.targets:
            raise ValueError("at least one target is required")
        wants_int8 = any(Precision.INT8 in t.precisions for t in self.targets)
        if wants_int8 and self.quantization.calibration is None:
            raise ValueError(
                "int8 needs calibration data: set quantization.calibration "
                "(e.g. {source: fashion-mnist, split: train, samples: 512}) or pass --calib"
            )

    def validation_data(self) -> DataSpec:
        """The validation set: the recipe's, or 64 random samples when it names none (no metric, only parity)."""
        return self.validation.data or DataSpec("random", samples=64)

    def precisions(self) -> set[Precision]:
        return {p for t in self.targets for p in t.precisions}

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def recipe_from_dict(data: Any, where: str = "recipe") -> Recipe:
    if isinstance(data, dict) and isinstance(data.get("quantization"), dict):
        where_preset = f"{where}.quantization.preset"
        data = {**data, "quantization": expand_preset(data["quantization"], where_preset, DataSpec.batch_size)}
    return from_dict(Recipe, data, where)


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Load and validate a recipe YAML file; errors name the file and the offending key."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file '{p}' not found; `edgekit recipes` lists the shipped recipes")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{p}: not a text file (byte {exc.start} is not UTF-8); a recipe is a YAML file") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{p}: a recipe is a mapping of keys (name, model, targets, ...)")
    data.setdefault("name", p.stem)
    return recipe_from_dict(data, where=p.name)
