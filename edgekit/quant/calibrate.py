"""Calibration: run data through the observed model once, then compute one EncodingSet."""

from __future__ import annotations

import copy
import platform
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..data import DataSet
from ..errors import CalibrationError
from ..recipe import QuantSpec
from .encodings import Encoding, EncodingSet, affine_from_range, weight_encoding
from .fakequant import apply_encodings, weight_array, wrap_layers, wrappers
from .observers import ESTIMATORS, Observer


@dataclass
class Calibrated:
    sim: torch.nn.Module  # the simulated-quantized model (fake-quant), also the source of the QDQ export
    encodings: EncodingSet


def feeds_to_torch(feeds: dict[str, object], names: list[str]) -> list[torch.Tensor]:
    return [torch.from_numpy(feeds[n]) for n in names]  # type: ignore[arg-type]


def calibrate(
    model: torch.nn.Module,
    input_names: list[str],
    data: DataSet,
    spec: QuantSpec,
    batch_size: int = 32,
    progress: bool = True,
) -> Calibrated:
    """Observe activations on ``data``, estimate ranges with ``spec.estimator``, return sim + encodings."""
    if len(data) == 0:
        raise CalibrationError("calibration data is empty")
    reparam_info = None
    if spec.scale_reparam:  # exact in FP32: rewrite a copy, then quantize that copy
        from .scale_reparam import equalize_norm_scales

        model = copy.deepcopy(model).eval()
        reparam_info = equalize_norm_scales(model, input_names, data, batch_size)
    sim = wrap_layers(model, spec)
    layers = wrappers(sim)
    if not layers:
        raise CalibrationError(
            "no quantizable layer (Linear/Conv) left after the ignore list "
            f"{list(spec.ignore)}; relax quantization.ignore"
        )
    for i, w in enumerate(layers):
        w.observer = Observer(seed=i)
        w.out_observer = Observer(seed=10_000 + i)  # outputs: used by full-integer lowerings (TFLite, CoreML)
    n_batches = -(-len(data) // batch_size)
    with torch.inference_mode():
        for feeds, _ in tqdm(
            data.batches(batch_size),
            total=n_batches,
            desc="calibrate",
            unit="batch",
            disable=None if progress else True,
            leave=False,
        ):
            sim(*feeds_to_torch(feeds, input_names))
    estimate = ESTIMATORS.get(spec.estimator.value)
    tensors: dict[str, Encoding] = {}
    for w in layers:
        obs = w.observer
        assert obs is not None
        if obs.count == 0:
            continue  # layer unused on this data: leave it in float
        lo, hi = estimate(obs, spec)
        scale, zp, signed = affine_from_range(lo, hi, spec.bits, bool(spec.activation_symmetric))
        tensors[f"{w.qname}.input"] = Encoding((scale,), (zp,), spec.bits, signed, None)
        tensors[f"{w.qname}.weight"] = weight_encoding(weight_array(w), spec.bits, spec.per_channel, axis=0)
        out = w.out_observer
        if out is not None and out.count:
            o_scale, o_zp, o_signed = affine_from_range(
                *estimate(out, spec), spec.bits, bool(spec.activation_symmetric)
            )
            tensors[f"{w.qname}.output"] = Encoding((o_scale,), (o_zp,), spec.bits, o_signed, None)
    meta = {
        "estimator": spec.estimator.value,
        "samples": len(data),
        "per_channel": spec.per_channel,
        "activation_symmetric": bool(spec.activation_symmetric),
        "quantize_outputs": spec.quantize_outputs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "layers": len(layers),
        "ignored": list(spec.ignore),
    }
    if reparam_info is not None:
        meta["scale_reparam"] = reparam_info
    encodings = EncodingSet(tensors, meta)
    return Calibrated(apply_encodings(sim, encodings), encodings)
