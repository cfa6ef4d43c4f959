"""The W8A8 model form that coremltools' ``torch.export`` frontend lowers to Core ML quantize/dequantize ops.

The simulated model (``quant.fakequant``) quantizes weights inside ``forward``; coremltools' ExportedProgram
frontend converts ``quantized_decomposed.dequantize_per_*`` of a constant to an int8 ``constexpr`` weight, but
has no converter for ``quantize_per_channel``. So each layer here holds its weight already quantized (an int8
buffer, edgekit's encoding) and dequantizes it in the graph; activations (input and, when encoded, output) get
``quantize_per_tensor`` / ``dequantize_per_tensor`` pairs. Same encodings, same numbers as the simulation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..nn.scopes import child_slots
from ..quant.fakequant import QuantWrapper, _qdq_tensor, wrappers


class Int8WeightLayer(nn.Module):
    """One quantized layer: int8 weight constant, dequantized in the graph; Q/DQ on the activations."""

    def __init__(self, w: QuantWrapper):
        super().__init__()
        import torch.ao.quantization.fx._decomposed  # registers the quantized_decomposed ops

        self.wrapper = w  # runs the layer (own-forward subclasses included) with the dequantized weight
        self.act_enc, self.out_enc = w.act_enc, w.out_enc
        qd = torch.ops.quantized_decomposed
        weight = w.layer.weight.detach()
        self.per_channel = w.quantize_weight and w.weight_per_channel
        self.quantized = w.quantize_weight
        if self.per_channel:
            self.qargs = (w.w_axis, -127, 127, torch.int8)
            self.register_buffer("w_scale", w.w_scale.clone())
            self.register_buffer("w_zp", w.w_zp.clone())
            q = qd.quantize_per_channel(weight, self.w_scale, self.w_zp, *self.qargs)
        elif self.quantized:
            self.qargs = (float(w.w_enc_scale), 0, -127, 127, torch.int8)
            q = qd.quantize_per_tensor(weight, *self.qargs)
        else:
            q = weight
        self.register_buffer("w_int8", q)

    # Models read `layer.weight.dtype` and friends (HF ViT does), as on QuantWrapper: the float layer's.
    @property
    def weight(self) -> torch.Tensor:
        return self.wrapper.layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.wrapper.layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qd = torch.ops.quantized_decomposed
        if self.act_enc is not None:
            x = _qdq_tensor(qd, x, self.act_enc)
        if self.per_channel:
            w = qd.dequantize_per_channel(self.w_int8, self.w_scale, self.w_zp, *self.qargs)
        elif self.quantized:
            w = qd.dequantize_per_tensor(self.w_int8, *self.qargs)
        else:
            w = self.w_int8
        y = self.wrapper._apply(x, w)
        return _qdq_tensor(qd, y, self.out_enc) if self.out_enc is not None else y


def int8_weight_form(sim: nn.Module) -> nn.Module:
    """A copy of the simulated model with every QuantWrapper replaced by an :class:`Int8WeightLayer`."""
    out = copy.deepcopy(sim).eval()
    targets = {id(w) for w in wrappers(out)}
    for module, name, _, child in child_slots(out):
        if id(child) in targets:
            setattr(module, name, Int8WeightLayer(child))
    return out
