"""Quantization profiles: which tensors of which op kind get Q/DQ, as data (a registry keyed by name).

An op kind (:data:`edgekit.quant.graph.annotate.OP_KINDS`) is quantized on its activation ``inputs``, its
``weights`` (per output channel, symmetric int8) and/or its ``output``. A profile fits what a runtime fuses into
integer kernels: ONNX Runtime and OpenVINO want Q/DQ on the inputs of matmul/conv (attention included) and nothing
after; LiteRT full-integer and CoreML W8A8 want every tensor on the integer path; TensorRT takes the ORT/OpenVINO
placement with symmetric activations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...registry import Registry

INPUTS, WEIGHTS, OUTPUT = "inputs", "weights", "output"


@dataclass(frozen=True)
class Profile:
    name: str
    roles: dict[str, frozenset[str]] = field(default_factory=dict)  # op kind -> {inputs, weights, output}
    symmetric: bool | None = None  # force symmetric activations (None: the recipe decides)
    description: str = ""

    def wants(self, kind: str, role: str) -> bool:
        return role in self.roles.get(kind, frozenset())


PROFILES: Registry[Profile] = Registry("quantization profile")

_MATMULS = ("linear", "conv", "addmm", "matmul", "attention")
_IN_W = frozenset({INPUTS, WEIGHTS})
_ALL = frozenset({INPUTS, WEIGHTS, OUTPUT})

PROFILES.add(
    "ort_ov",
    Profile(
        "ort_ov",
        {**{k: _IN_W for k in _MATMULS}, "embedding": frozenset({WEIGHTS})},
        description="inputs and weights of linear/conv/matmul (attention included); int8 embedding tables",
    ),
)
PROFILES.add(
    "full_integer",
    Profile(
        "full_integer",
        {**{k: _ALL for k in _MATMULS}, "embedding": frozenset({WEIGHTS, OUTPUT}), "add": frozenset({INPUTS, OUTPUT})},
        description="every tensor on the integer path: matmul/conv inputs, weights and outputs, embeddings, adds",
    ),
)
PROFILES.add(
    "tensorrt",
    Profile(
        "tensorrt",
        {**{k: _IN_W for k in _MATMULS}, "embedding": frozenset({WEIGHTS})},
        symmetric=True,
        description="the ort_ov placement with symmetric int8 activations (TensorRT's Q/DQ rules)",
    ),
)

DEFAULT_PROFILE = "ort_ov"
