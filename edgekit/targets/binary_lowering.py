"""1-bit weights on real targets: stored as 1 bit per weight where the target has such a format.

A model with ``binary_weights`` exports every binarized layer as a product with a pure +-1 weight tensor
followed by a per-channel scale. Here those +-1 tensors are found in each target's converted program and
rewritten into the target's 1-bit form, exactly (the values do not change):

* ``coreml``: a 1-bit palette (``constexpr_lut_to_dense`` with a 2-entry lookup table {-1, +1} and 1-bit
  indices; coremltools ``palettize_weights``, mode ``unique``);
* ``openvino``: a ``u1`` constant (bit-packed) -> Convert -> ``FakeQuantize(levels=2)`` mapping {0, 1} to
  {-1, +1}, OpenVINO's representation of binary weights;
* every other target (onnx, tflite, tensorrt): *simulated*, the +-1 values stored in float.

``describe`` records which happened in each artifact (``artifact.json`` options and a note in the report).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..registry import Registry
from .base import Artifact

MIN_ELEMENTS = 64  # smaller +-1 tensors are not weights of a binarized layer
LoweringFn = Callable[[Any, int, Artifact], Any]  # (converted program, expected tensors, artifact) -> program
LOWERINGS: Registry[LoweringFn] = Registry("1-bit weight lowering")


def count_binary_layers(model: torch.nn.Module) -> int:
    from ..transforms.binary_weights import binary_layers

    return len(binary_layers(model))


def is_sign_tensor(value: Any) -> bool:
    arr = np.asarray(value)
    return arr.ndim >= 2 and arr.size >= MIN_ELEMENTS and arr.dtype.kind == "f" and bool(np.all(np.abs(arr) == 1))


def lower_binary_weights(target: str, model: torch.nn.Module, program: Any, art: Artifact) -> Any:
    """Rewrite the +-1 weight tensors of ``program`` (the target's converted model) into its 1-bit form."""
    expected = count_binary_layers(model)
    if not expected or target not in LOWERINGS:
        return program
    return LOWERINGS.get(target)(program, expected, art)


def describe(target: str, model: torch.nn.Module, art: Artifact) -> None:
    """Say in the artifact whether its 1-bit weights are lowered (set by a lowering) or simulated."""
    expected = count_binary_layers(model)
    if not expected or "binary_weights" in art.options:
        return
    art.options["binary_weights"] = {"layers": expected, "lowered": 0, "mode": "simulated", "format": "float32 +-1"}
    art.notes.append(
        f"1-bit weights simulated: {target} has no 1-bit weight format here, so the +-1 weights of {expected} "
        "binarized layers are stored in float (same numbers, no size gain)"
    )


def _record(art: Artifact, expected: int, lowered: int, fmt: str) -> None:
    mode = "lowered" if lowered == expected else ("partly lowered" if lowered else "simulated")
    art.options["binary_weights"] = {"layers": expected, "lowered": lowered, "mode": mode, "format": fmt}
    art.notes.append(f"1-bit weights {mode}: {lowered} of {expected} binarized layers stored as {fmt}")


@LOWERINGS.register("coreml")
def coreml_palette(ml: Any, expected: int, art: Artifact) -> Any:
    from coremltools.optimize import coreml as opt

    names = _sign_consts(ml)
    if names:
        palette = opt.OpPalettizerConfig(mode="unique", granularity="per_tensor", weight_threshold=MIN_ELEMENTS)
        ml = opt.palettize_weights(ml, config=opt.OptimizationConfig(op_name_configs=dict.fromkeys(names, palette)))
    _record(art, expected, len(names), "1-bit palettes (lookup table {-1, +1}, constexpr_lut_to_dense)")
    return ml


def _sign_consts(ml: Any) -> list[str]:
    """Names of the program's constants that hold only +-1 (at least MIN_ELEMENTS of them).

    Walks the MIL program itself: coremltools' get_weights_metadata fails on a constant that feeds an op with a
    tuple input (a ViT's position embedding into concat: "'list' object has no attribute 'val'")."""
    names: list[str] = []

    def walk(block: Any) -> None:
        for op in block.operations:
            for inner in op.blocks:
                walk(inner)
            value = op.val.val if op.op_type == "const" and op.val is not None else None
            if isinstance(value, np.ndarray) and value.size >= MIN_ELEMENTS and is_sign_tensor(value):
                names.append(op.name)

    for function in ml._mil_program.functions.values():  # the program ct.convert just built
        walk(function)
    return names


@LOWERINGS.register("openvino")
def openvino_binary_fake_quantize(model: Any, expected: int, art: Artifact) -> Any:
    import openvino as ov
    from openvino import opset13 as ops

    lowered = 0
    for node in list(model.get_ordered_ops()):
        if node.get_type_name() != "Constant" or node.get_element_type() != ov.Type.f32:
            continue
        value = node.get_data()
        if not is_sign_tensor(value):
            continue
        bits = ov.Tensor(ov.Type.u1, ov.Shape(list(value.shape)))
        packed = np.packbits(value.reshape(-1) > 0)  # MSB first, as OpenVINO's u1 layout
        bits.data.view(np.uint8).reshape(-1)[: packed.size] = packed
        signs = ops.fake_quantize(
            ops.convert(ops.constant(bits), ov.Type.f32),
            ops.constant(np.float32(0.0)),
            ops.constant(np.float32(1.0)),
            ops.constant(np.float32(-1.0)),
            ops.constant(np.float32(1.0)),
            2,
        )
        signs.set_friendly_name(f"{node.get_friendly_name()}/binary")
        for target in list(node.output(0).get_target_inputs()):
            target.replace_source_output(signs.output(0))
        lowered += 1
    model.validate_nodes_and_infer_types()
    _record(art, expected, lowered, "u1 constants read through FakeQuantize(levels=2)")
    return model
