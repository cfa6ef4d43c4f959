"""The edgekit PT2E ``Quantizer``: annotates the captured graph by op pattern, under a :class:`Profile`.

Annotation looks at aten ops, not at Python classes, so every ``linear``, ``conv``, ``addmm`` (transformers'
GPT-2 ``Conv1D``), ``matmul``/``bmm`` (attention's Q·Kᵀ and P·V), ``embedding`` and ``add`` is covered whichever
module produced it: a ``Conv2d`` subclass that pads in its own ``forward`` is just a pad followed by ``conv2d``.
A graph input that is a parameter (``get_attr``) is a weight, quantized per channel along its output axis; every
other floating input is an activation, quantized per tensor. Nodes named in ``exclude`` (``<module>/<node>``, as
encodings.json keys them; capture is deterministic, so names hold across captures and copies) get no annotation:
accuracy-aware quantization and ``quantization.ignore`` leave them in float. A product with a 1-bit weight (only
+-1) is left in float too.

The elementwise kinds (``mul``, ``sub``, ``mean``, ``rsqrt``, ``sigmoid``) are quantized only by a profile that
names them (``full_integer_16x8``); there a constant operand of ``add``/``sub``/``mul`` is quantized per tensor on
the activations' grid (:func:`.observers.constant_spec`), not per channel like a matmul's weight, and a sigmoid's
output goes on the fixed grid of LiteRT's LOGISTIC.
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e.quantizer import DerivedQuantizationSpec, QuantizationAnnotation, Quantizer

from ...nn.signs import is_sign_tensor
from ...recipe import QuantSpec
from ..pt2e import node_label
from .observers import MASK_MARGIN, MASKED, activation_spec, constant_spec, probability_spec, scores_spec, weight_spec
from .ops import ELEMENTWISE, OP_KINDS, OpPattern, fused_activation
from .profiles import CHAINED, INPUTS, OUTPUT, WEIGHTS, Profile

aten = torch.ops.aten


def _floating(node: object) -> bool:
    if not isinstance(node, torch.fx.Node):
        return False
    val = node.meta.get("val")
    return isinstance(val, torch.Tensor) and val.dtype.is_floating_point


def _is_weight(node: torch.fx.Node) -> bool:
    return node.op == "get_attr"


def _binary(node: torch.fx.Node, pattern: OpPattern) -> bool:
    """Whether ``node`` multiplies by a 1-bit weight (a parameter holding only +-1): it stays float, exact, and the
    targets with a 1-bit format store that weight in one bit (:mod:`edgekit.nn.signs`)."""
    from .params import tensor_of

    gm = node.graph.owning_module
    args = [node.args[p] for p in pattern.inputs if p < len(node.args)]
    return any(isinstance(a, torch.fx.Node) and _is_weight(a) and is_sign_tensor(tensor_of(gm, a)) for a in args)


_SOFTMAX = frozenset({aten.softmax.int, aten._softmax.default})
# ops that move or relabel values without changing them (eval-mode dropout included)
_VALUE_PRESERVING = frozenset(
    {
        aten.to.dtype,
        aten.dropout.default,
        aten.contiguous.default,
        aten.clone.default,
        aten.view.default,
        aten.reshape.default,
        aten.transpose.int,
        aten.permute.default,
        aten.expand.default,
        aten.expand_as.default,
    }
)


def _is_softmax(node: torch.fx.Node) -> bool:
    """Whether ``node`` holds a softmax's values (HF attention: softmax -> to(dtype) -> dropout -> matmul)."""
    while node.op == "call_function" and node.target in _VALUE_PRESERVING and isinstance(node.args[0], torch.fx.Node):
        node = node.args[0]
    return node.op == "call_function" and node.target in _SOFTMAX


_ZERO_PADS = frozenset({aten.pad.default, aten.constant_pad_nd.default})


def _zero_padding(pad: torch.fx.Node) -> bool:
    """``pad`` pads with the constant 0 (``aten.pad(x, pads, "constant", 0)`` or ``constant_pad_nd(x, pads, 0)``)."""
    if pad.target is aten.pad.default:
        mode = pad.args[2] if len(pad.args) > 2 else pad.kwargs.get("mode", "constant")
        value = pad.args[3] if len(pad.args) > 3 else pad.kwargs.get("value", 0.0)
        return mode == "constant" and (value or 0.0) == 0.0
    value = pad.args[2] if len(pad.args) > 2 else pad.kwargs.get("value", 0.0)
    return value == 0.0


_WHERE = frozenset(
    {aten.where.self, aten.where.ScalarOther, aten.where.ScalarSelf, aten.where.Scalar, aten.masked_fill.Scalar}
)


def _is_additive_mask(node: object) -> bool:
    """Whether ``node`` is an attention mask added to the scores: a ``where``/``masked_fill`` that puts a huge
    negative number (HF: ``finfo.min``) on the masked positions, possibly broadcast."""
    while (
        isinstance(node, torch.fx.Node)
        and node.op == "call_function"
        and (node.target in _VALUE_PRESERVING or node.target is aten.expand.default)
    ):
        node = node.args[0]
    if not (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in _WHERE):
        return False
    return any(isinstance(a, (int, float)) and a <= MASKED for a in node.args[1:])


def _mask_qparams(observers: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid of an additive mask, from its scores' observer: [-(score span + MASK_MARGIN), 0]. The mask holds
    only 0 and a huge negative number; on this grid 0 stays exact and a masked position becomes a value that puts
    the sum at least MASK_MARGIN below every real score, whatever the scores' own range. (On the scores' own grid a
    masked position only reached the smallest score: a narrow range left the mask nearly without effect.)"""
    scores = observers[0]
    lo, hi = scores.value_range()
    depth = max(hi, 0.0) - min(lo, 0.0) + MASK_MARGIN
    return scores._calculate_qparams(torch.tensor(-depth), torch.tensor(0.0))


def _mask_grid(scores: torch.fx.Node, node: torch.fx.Node, like) -> DerivedQuantizationSpec:
    """Quantize the additive mask input of ``node`` on :func:`_mask_qparams`'s grid, derived from the observer of its
    ``scores`` input (which observes only the scores: a shared observer would widen its range to the mask's)."""
    return DerivedQuantizationSpec(
        derived_from=[(scores, node)],
        derive_qparams_fn=_mask_qparams,
        dtype=like.dtype,
        quant_min=like.quant_min,
        quant_max=like.quant_max,
        qscheme=like.qscheme,
    )


def _feeds_softmax(node: torch.fx.Node) -> bool:
    """Whether ``node``'s values reach a softmax unchanged (scores + mask -> softmax)."""
    users = list(node.users)
    while len(users) == 1 and users[0].op == "call_function" and users[0].target in _VALUE_PRESERVING:
        users = list(users[0].users)
    return any(u.op == "call_function" and u.target in _SOFTMAX for u in users)


def _is_model_output(node: torch.fx.Node) -> bool:
    return any(u.op == "output" for u in node.users)


def _quantized_output(node: torch.fx.Node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return ann is not None and ann.output_qspec is not None


_SCALAR_OPS = frozenset({aten.mul.Tensor, aten.div.Tensor, aten.mul.Scalar, aten.div.Scalar})


def _on_integer_path(node: torch.fx.Node) -> bool:
    """Whether ``node`` is a quantized output, or one moved, reshaped or scaled by a number (attention scores
    divided by sqrt(d)), whose integer kernel a runtime keeps on the integer path."""
    while node.op == "call_function" and (
        node.target in _VALUE_PRESERVING
        or (node.target in _SCALAR_OPS and len(node.args) > 1 and isinstance(node.args[1], (int, float)))
    ):
        if _quantized_output(node) or not isinstance(node.args[0], torch.fx.Node):
            break
        node = node.args[0]
    return _quantized_output(node)


def annotated_nodes(model: torch.fx.GraphModule) -> list[str]:
    """The op-pattern nodes an annotation pass quantized (inputs, weights or output), in graph order."""
    return [
        node_label(n)
        for n in model.graph.nodes
        if n.op == "call_function" and n.target in OP_KINDS and n.meta.get("quantization_annotation") is not None
    ]


def _release_output(arg: object) -> None:
    """Leave an excluded node's activation input in float: walk back through single-reader unannotated ops (a
    pad, a view) to the op that requantizes its output, and drop that output's Q/DQ when the excluded node is its
    only reader (a tensor another quantized op reads keeps its Q/DQ, so there the input stays quantized)."""
    while isinstance(arg, torch.fx.Node) and len(arg.users) == 1 and _floating(arg):
        ann = arg.meta.get("quantization_annotation")
        if ann is not None:
            ann.output_qspec = None
            return
        if arg.op != "call_function":
            return
        arg = next((a for a in arg.args if _floating(a)), None)


class EdgekitQuantizer(Quantizer):
    """Per-channel symmetric int8 weights; per-tensor activations, asymmetric uint8 unless ``symmetric`` (int8)."""

    def __init__(self, q: QuantSpec, profile: Profile, symmetric: bool, exclude: frozenset[str] = frozenset()):
        super().__init__()
        self.q, self.profile, self.exclude = q, profile, exclude
        bits = profile.activation_bits
        self.act = activation_spec(q, symmetric, bits)
        self.scores = activation_spec(q, True, bits)  # Q and K under ``scores_only``: int8 MHA takes symmetric int8
        self.probabilities = probability_spec(symmetric, bits)
        self.masked_scores = scores_spec(q, symmetric, bits)
        self.constant = constant_spec(bits)

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in model.graph.nodes:  # in topological order: a chained op sees its producers' annotations
            pattern = OP_KINDS.get(node.target) if node.op == "call_function" else None
            if pattern is None or (self.exclude and node_label(node) in self.exclude) or _binary(node, pattern):
                continue
            ann = self._annotation(node, pattern)
            if ann is None:
                continue
            act = fused_activation(node) if ann.output_qspec is not None and pattern.kind != "add" else None
            if act is not None:  # requantize after the fused activation instead
                act.meta["quantization_annotation"] = QuantizationAnnotation(
                    output_qspec=None if _is_model_output(act) else ann.output_qspec, _annotated=True
                )
                ann.output_qspec = None
            node.meta["quantization_annotation"] = ann
        for node in model.graph.nodes if self.exclude else ():
            if node.op == "call_function" and node.target in OP_KINDS and node_label(node) in self.exclude:
                for arg in node.args:
                    _release_output(arg)
        return model

    def _annotation(self, node: torch.fx.Node, pattern: OpPattern) -> QuantizationAnnotation | None:
        if self.profile.wants(pattern.kind, CHAINED):
            return self._chained(node, pattern)
        if self.profile.scores_only and pattern.kind in ("matmul", "attention"):
            return self._scores(node, pattern)
        qmap = {}
        for pos in pattern.inputs:
            arg = node.args[pos] if pos < len(node.args) else None
            if not _floating(arg) or arg in qmap:
                continue
            if _is_weight(arg):
                if self.profile.wants(pattern.kind, WEIGHTS):
                    qmap[arg] = (
                        self.constant
                        if pattern.kind in ELEMENTWISE
                        else weight_spec(self.q, pattern.weight_axis(pos, arg.meta["val"].dim()))
                    )
            elif self.profile.wants(pattern.kind, INPUTS):
                if self.profile.pads_inside and pattern.kind == "conv" and self._pad_inside(arg):
                    continue
                scores = next((a for a in node.args[:2] if a is not arg and isinstance(a, torch.fx.Node)), None)
                if pattern.kind == "add" and scores is not None and _is_additive_mask(arg):
                    # the mask on a grid sized from the scores (the integer add needs comparable scales; a grid
                    # spanning finfo.min has none): masked positions end up MASK_MARGIN below every real score
                    qmap[arg] = _mask_grid(scores, node, self.act)
                    continue
                qmap[arg] = self.probabilities if self.profile.fixed_probabilities and _is_softmax(arg) else self.act
        wants_out = self.profile.wants(pattern.kind, OUTPUT) and _floating(node) and not _is_model_output(node)
        out = self._output_spec(node, pattern) if wants_out else None
        if not qmap and out is None:
            return None
        return QuantizationAnnotation(input_qspec_map=qmap, output_qspec=out, _annotated=True)

    def _output_spec(self, node: torch.fx.Node, pattern: OpPattern):
        if pattern.kind == "sigmoid":  # in [0, 1]: LiteRT's LOGISTIC has the softmax's fixed output grid
            return self.probabilities
        return self.masked_scores if _feeds_softmax(node) else self.act

    def _pad_inside(self, arg: torch.fx.Node) -> bool:
        """When ``arg`` is a zero pad, quantize its input instead (Q/DQ -> pad -> conv) and say so."""
        is_pad = arg.op == "call_function" and arg.target in _ZERO_PADS and len(arg.users) == 1
        if not is_pad or not _zero_padding(arg) or not isinstance(arg.args[0], torch.fx.Node):
            return False
        source = arg.args[0]
        if not _quantized_output(source):
            arg.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={source: self.act}, _annotated=True
            )
        return True

    def _scores(self, node: torch.fx.Node, pattern: OpPattern) -> None:
        """Q·Kᵀ only: a matmul of attention probabilities (P·V) and a fused attention's V stay float; Q and K
        are quantized at their producers' outputs (see :meth:`_hoist`). Returns no annotation for ``node``."""
        args = [node.args[p] for p in pattern.inputs[:2] if p < len(node.args)]
        if any(isinstance(a, torch.fx.Node) and _is_softmax(a) for a in args):
            return None
        for arg in args:
            if isinstance(arg, torch.fx.Node) and _floating(arg) and not _is_weight(arg):
                self._hoist(arg)
        return None

    def _hoist(self, arg: torch.fx.Node) -> None:
        """Quantize ``arg`` at its producer's output, before the reshapes and transposes that lead here."""
        root = arg
        while (
            root.op == "call_function" and root.target in _VALUE_PRESERVING and isinstance(root.args[0], torch.fx.Node)
        ):
            root = root.args[0]
        if not _floating(root) or _is_weight(root) or root.op == "placeholder":
            return
        ann = root.meta.get("quantization_annotation")
        if ann is None:
            root.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=self.scores, _annotated=True)
        elif ann.output_qspec is None:
            ann.output_qspec = self.scores

    def _chained(self, node: torch.fx.Node, pattern: OpPattern) -> QuantizationAnnotation | None:
        """Inputs and output quantized when every floating input is already on the integer path, an additive
        attention mask aside; the mask goes on a grid sized from the scores, and an output a softmax normalizes
        leaves the masked positions out of its range."""
        args = [a for a in (node.args[p] for p in pattern.inputs if p < len(node.args)) if _floating(a)]
        masks = {a for a in args if len(args) > 1 and _is_additive_mask(a)}
        if not args or _is_model_output(node) or not all(_on_integer_path(a) for a in args if a not in masks):
            return None
        qmap = {}
        for arg in args:
            scores = next((a for a in args if a is not arg), None)
            qmap[arg] = _mask_grid(scores, node, self.act) if arg in masks else self.act
        out = self.masked_scores if _feeds_softmax(node) else self.act
        return QuantizationAnnotation(input_qspec_map=qmap, output_qspec=out, _annotated=True)

    def validate(self, model: torch.fx.GraphModule) -> None:
        return None
