"""What a converted .tflite actually runs: how many of its kernels are integer, and which ones are float."""

from __future__ import annotations

_NOT_KERNELS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def kernel_precision(flat: bytes) -> tuple[int, dict[str, int]]:
    """(integer kernels, float kernels by op) of a .tflite: a kernel is float when any of its tensors is.

    The artifact note states this instead of assuming it: LiteRT makes a layer integer only where its inputs and
    output are quantized, and the converter decides that, not the recipe."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flat)
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    integer, floating = 0, {}
    for op in it._get_ops_details():
        if op["op_name"] in _NOT_KERNELS:
            continue
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(dtypes[i].__name__.startswith("float") for i in tensors):
            floating[op["op_name"]] = floating.get(op["op_name"], 0) + 1
        else:
            integer += 1
    return integer, floating


def kernel_note(flat: bytes, source: str) -> str:
    try:
        integer, floating = kernel_precision(flat)
    except Exception:  # an interpreter without op details: say what was asked, not what was counted
        return f"int8 from {source} (LiteRT static mode; integer kernels not counted: no op details here)"
    total = integer + sum(floating.values())
    if not floating:
        return f"full-integer int8 from {source}: all {total} kernels integer (LiteRT static mode)"
    rest = ", ".join(f"{op} x{n}" for op, n in sorted(floating.items()))
    return f"int8 from {source}: {integer} of {total} kernels integer, float: {rest} (LiteRT static mode)"
