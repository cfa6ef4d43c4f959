"""The simulated-quantized model: Linear/Conv layers wrapped with fake-quant on input and weight.

``torch.fake_quantize_*`` ops export to ONNX QuantizeLinear/DequantizeLinear pairs, so the exported graph of
the simulated model *is* the explicit-Q/DQ INT8 model, carrying exactly the calibrated encodings.
"""

from __future__ import annotations

import copy
import fnmatch
import math

import numpy as np
import torch
from torch import nn

from ..nn.scopes import child_slots
from ..recipe import QuantSpec
from .encodings import Encoding, EncodingSet
from .observers import Observer

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


class QuantWrapper(nn.Module):
    """Observe (calibration) or fake-quantize (simulation/export) the input and weight of one layer."""

    def __init__(self, layer: nn.Module, name: str):
        super().__init__()
        self.layer = layer
        self.qname = name
        self.observer: Observer | None = None
        self.out_observer: Observer | None = None
        # "fake": torch.fake_quantize_* ops, which the ONNX exporter lowers to QuantizeLinear/DequantizeLinear.
        # "decomposed": PT2E-style quantized_decomposed Q/DQ on input, weight *and output*, the form LiteRT's
        # and coremltools' converters turn into integer kernels.
        self.style = "fake"
        self.act_enc: Encoding | None = None
        self.out_enc: Encoding | None = None
        self.register_buffer("act_scale", torch.ones(()), persistent=False)
        self.register_buffer("act_zp", torch.zeros((), dtype=torch.int32), persistent=False)
        self.act_range = (0, 255)
        self.register_buffer("w_scale", torch.ones(1), persistent=False)
        self.register_buffer("w_zp", torch.zeros(1, dtype=torch.int32), persistent=False)
        self.w_axis = 0
        self.w_range = (-128, 127)
        self.quantize_act = False
        self.quantize_weight = False
        self.weight_per_channel = True
        self.quantize_output = False  # "fake" style: Q/DQ on the output too (QuantSpec.quantize_outputs)

    def set_encodings(self, act: Encoding | None, weight: Encoding | None, out: Encoding | None = None) -> None:
        self.act_enc, self.out_enc = act, out
        if out is not None:  # converted once here, not on every forward
            self.out_qparams = (float(out.scale[0]), int(out.zero_point[0]), *((-128, 127) if out.signed else (0, 255)))
        self.quantize_act = act is not None
        if act is not None:
            self.act_scale = torch.tensor(act.scale[0], dtype=torch.float32)
            self.act_zp = torch.tensor(act.zero_point[0], dtype=torch.int32)
            # ONNX accepts only (0, 255) and (-128, 127); a symmetric int8 code never reaches -128.
            self.act_range = (-128, 127) if act.signed else (0, 255)
        self.quantize_weight = weight is not None
        if weight is not None:
            self.w_scale = torch.tensor(weight.scale, dtype=torch.float32)
            self.w_zp = torch.tensor(weight.zero_point, dtype=torch.int32)
            self.weight_per_channel = weight.axis is not None
            self.w_axis = weight.axis or 0
            self.w_enc_scale = weight.scale[0]

    # Models read `layer.weight.dtype` and friends (HF ViT does): expose the wrapped layer's parameters.
    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layer.bias

    def __getattr__(self, name: str):
        # ...and its other attributes: HF MobileNetV2's TF-style padding reads `conv.stride`, `conv.kernel_size`.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "layer":
                raise
            return getattr(self.layer, name)

    def _qweight(self) -> torch.Tensor:
        w = self.layer.weight
        if not self.quantize_weight:
            return w
        if self.weight_per_channel:
            return torch.fake_quantize_per_channel_affine(w, self.w_scale, self.w_zp, self.w_axis, *self.w_range)
        return torch.fake_quantize_per_tensor_affine(w, self.w_scale[0], self.w_zp[0], *self.w_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style == "decomposed":
            return self._decomposed_forward(x)
        if self.style == "aten":
            return self._aten_forward(x)
        if self.observer is not None:
            self.observer.update(x)
        if self.quantize_act:
            x = torch.fake_quantize_per_tensor_affine(x, self.act_scale, self.act_zp, *self.act_range)
        y = self._apply(x, self._qweight())
        if self.out_observer is not None:
            self.out_observer.update(y)
        if self.quantize_output and self.out_enc is not None:
            y = torch.fake_quantize_per_tensor_affine(y, *self.out_qparams)
        return y

    def _apply(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if _own_forward(layer):
            # A subclass with its own forward (TF "same" padding in EfficientNet-Lite's Conv2d, ...): run that
            # forward with the quantized weight swapped in, so whatever it does around the op is kept.
            # (A plain swap, not torch.func.functional_call, which the TorchScript-based ONNX exporter refuses.)
            kept = layer._parameters["weight"]
            layer._parameters["weight"] = w
            try:
                return layer(x)
            finally:
                layer._parameters["weight"] = kept
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(x, w, layer.bias)
        return layer._conv_forward(x, w, layer.bias)

    def _decomposed_forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.ao.quantization.fx._decomposed

        qd = torch.ops.quantized_decomposed
        if self.act_enc is not None:
            x = _qdq_tensor(qd, x, self.act_enc)
        w = self.layer.weight
        if self.quantize_weight and self.weight_per_channel:
            args = (self.w_scale, self.w_zp, self.w_axis, -127, 127, torch.int8)
            w = qd.dequantize_per_channel(qd.quantize_per_channel(w, *args), *args)
        elif self.quantize_weight:
            args = (pt2e_scale(self.w_enc_scale), 0, -127, 127, torch.int8)
            w = qd.dequantize_per_tensor(qd.quantize_per_tensor(w, *args), *args)
        y = self._apply(x, w)
        return _qdq_tensor(qd, y, self.out_enc) if self.out_enc is not None else y

    def _aten_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantized-tensor ops (quantize_per_tensor / quantize_per_channel + dequantize): the form
        coremltools' TorchScript frontend lowers to quantize/dequantize and int8 constexpr weights."""
        if self.act_enc is not None:
            x = _aten_qdq(x, self.act_enc)
        w = self.layer.weight
        if self.quantize_weight and self.weight_per_channel:
            w = torch.quantize_per_channel(
                w, self.w_scale.double(), self.w_zp.long(), self.w_axis, torch.qint8
            ).dequantize()
        elif self.quantize_weight:
            w = torch.quantize_per_tensor(w, float(self.w_enc_scale), 0, torch.qint8).dequantize()
        y = self._apply(x, w)
        return _aten_qdq(y, self.out_enc) if self.out_enc is not None else y


def _own_forward(layer: nn.Module) -> bool:
    """Whether ``layer`` is a subclass of a quantizable class that overrides ``forward``."""
    return not any(type(layer).forward is base.forward for base in QUANTIZABLE)


def _aten_qdq(x: torch.Tensor, enc: Encoding) -> torch.Tensor:
    dtype = torch.qint8 if enc.signed else torch.quint8
    return torch.quantize_per_tensor(x, float(enc.scale[0]), int(enc.zero_point[0]), dtype).dequantize()


def _qdq_tensor(qd, x: torch.Tensor, enc: Encoding) -> torch.Tensor:
    """Per-tensor Q/DQ in int8. A uint8 encoding (zp in 0..255) is the same grid shifted by 128."""
    zp = enc.zero_point[0] - (0 if enc.signed else 128)
    args = (pt2e_scale(enc.scale[0]), int(zp), -128, 127, torch.int8)
    return qd.dequantize_per_tensor(qd.quantize_per_tensor(x, *args), *args)


def pt2e_scale(scale: float) -> float:
    """``scale`` as a float whose ``repr`` has a decimal point.

    LiteRT's converter writes a Q/DQ scale into an MLIR quant type with ``str()``, and MLIR refuses a float
    literal without a point: the ``1e-12`` scale floor of a constant (all-zero) tensor fails conversion with
    "Unable to parse type". The next float up (``1.0000000000000002e-12``) is the same scale for every purpose."""
    s = float(scale)
    if math.isfinite(s) and "." not in repr(s):
        s = math.nextafter(s, math.inf)
    return s


def is_ignored(name: str, module: nn.Module, patterns: tuple[str, ...]) -> bool:
    for pat in patterns:
        if pat.startswith("type:"):
            if type(module).__name__ == pat[5:]:
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def wrap_layers(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """A deep copy of ``model`` with every quantizable, non-ignored layer wrapped in a QuantWrapper."""
    sim = copy.deepcopy(model).eval()
    for module, child_name, full, child in child_slots(sim):
        if isinstance(child, QUANTIZABLE) and not is_ignored(full, child, spec.ignore):
            setattr(module, child_name, QuantWrapper(child, full))
    return sim


def wrappers(model: nn.Module) -> list[QuantWrapper]:
    return [m for m in model.modules() if isinstance(m, QuantWrapper)]


def apply_encodings(sim: nn.Module, encodings: EncodingSet) -> nn.Module:
    for w in wrappers(sim):
        w.observer = w.out_observer = None
        t = encodings.tensors
        w.set_encodings(t.get(f"{w.qname}.input"), t.get(f"{w.qname}.weight"), t.get(f"{w.qname}.output"))
        w.quantize_output = bool(encodings.meta.get("quantize_outputs", False))
    return sim


def decomposed(sim: nn.Module, style: str = "decomposed") -> nn.Module:
    """A copy of the simulated model with Q/DQ also on layer outputs: ``decomposed`` (PT2E ops, for LiteRT)
    or ``aten`` (quantized-tensor ops, for coremltools). Same encodings, same numbers."""
    out = copy.deepcopy(sim).eval()
    for w in wrappers(out):
        w.style = style
        if style == "decomposed":
            _unsplat_bias(w)
    return out


def _unsplat_bias(w: QuantWrapper) -> None:
    """Make a non-zero bias whose elements are all equal (HF Hiera's init: 0.02 everywhere) not quite uniform.

    LiteRT's converter holds such a bias as one splat value and quantizes it to int32 with the first output
    channel's scale only, so with per-channel weights every other channel gets a wrong bias (hiera tflite int8
    cosine 0.87 vs the simulated model). One float32 ulp on one element keeps the constant non-splat."""
    bias = w.layer.bias
    if bias is None or bias.numel() < 2 or not (w.quantize_weight and w.weight_per_channel):
        return
    with torch.no_grad():
        if bool((bias == bias.flatten()[0]).all()) and bool(bias.flatten()[0] != 0):
            first = bias.view(-1)[:1]
            first.copy_(torch.nextafter(first, torch.full_like(first, float("inf"))))


def weight_array(w: QuantWrapper) -> np.ndarray:
    return w.layer.weight.detach().float().numpy()
