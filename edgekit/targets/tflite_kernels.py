"""What a converted .tflite actually runs: how many of its kernels are integer, and which ones are float."""

from __future__ import annotations

from dataclasses import dataclass, field

_NOT_KERNELS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass
class KernelCensus:
    integer: int = 0
    floating: dict[str, int] = field(default_factory=dict)  # op name -> float kernels of it
    int16: int = 0  # integer kernels with an int16 tensor (LiteRT's 16x8 mode)


def kernel_census(flat: bytes) -> KernelCensus:
    """Every kernel of a .tflite: float when any of its tensors is, else integer (int16 when one of them is)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flat)
    dtypes = {t["index"]: t["dtype"].__name__ for t in it.get_tensor_details()}
    out = KernelCensus()
    for op in it._get_ops_details():
        if op["op_name"] in _NOT_KERNELS:
            continue
        types = {dtypes[i] for i in (*op["inputs"], *op["outputs"]) if i >= 0}
        if any(t.startswith("float") for t in types):
            out.floating[op["op_name"]] = out.floating.get(op["op_name"], 0) + 1
        else:
            out.integer += 1
            out.int16 += "int16" in types
    return out


def kernel_precision(flat: bytes) -> tuple[int, dict[str, int]]:
    """(integer kernels, float kernels by op) of a .tflite.

    The artifact note states this instead of assuming it: LiteRT makes a layer integer only where its inputs and
    output are quantized, and the converter decides that, not the recipe."""
    census = kernel_census(flat)
    return census.integer, census.floating


def kernel_note(flat: bytes, source: str) -> str:
    try:
        census = kernel_census(flat)
    except Exception:  # an interpreter without op details: say what was asked, not what was counted
        return f"int8 from {source} (LiteRT static mode; integer kernels not counted: no op details here)"
    kind = "16x8 (int16 activations, int8 weights)" if census.int16 else "int8"
    total = census.integer + sum(census.floating.values())
    if not census.floating:
        return f"full-integer {kind} from {source}: all {total} kernels integer (LiteRT static mode)"
    rest = ", ".join(f"{op} x{n}" for op, n in sorted(census.floating.items()))
    return f"{kind} from {source}: {census.integer} of {total} kernels integer, float: {rest} (LiteRT static mode)"
