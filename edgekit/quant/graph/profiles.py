"""Quantization profiles: which tensors of which op kind get Q/DQ, as data (a registry keyed by name).

An op kind (:data:`edgekit.quant.graph.ops.OP_KINDS`) is quantized on its activation ``inputs``, its
``weights`` (per output channel, symmetric int8), its ``output``, or, ``chained``, on inputs and output only when
every floating input already is a quantized output, an additive attention mask aside (an add between two integer
convolutions, the scores plus their mask; not a transformer's residual stream, nor the ``variance + eps`` of an
RMSNorm or a rotary embedding's sum of products). A profile fits what a runtime fuses into integer kernels:

* ``ort_ov`` (the x86 placement; the default of :func:`graph_quantize`): matmul/linear inputs and weights, nothing
  after (ONNX Runtime's MatMulIntegerToFloat and OpenVINO's int8 MatMul take float out); convolutions also
  requantize their output, after a fused ReLU/ReLU6, since ONNX Runtime runs a convolution in int8 only as
  ``DQ -> Conv -> Q`` (QLinearConv), and adds between them are chained, so a conv net stays on the integer path;
  int8 embedding tables. The targets use its two refinements, measured on MiniLM side by side:
  ``onnxruntime`` (float embedding tables) and ``openvino`` (float attention matmuls).
* ``full_integer`` (LiteRT, ExecuTorch/XNNPACK, Core ML W8A8): matmul/conv inputs, weights and outputs and
  embeddings, since those runtimes make a layer integer only where its output is quantized too; adds are
  ``chained``. Quantizing every add put a transformer's residual stream on one per-tensor int8 grid, where its large
  common component leaves the signal a few steps (tiny random ViT-MSN: cosine 0.35, 0.997 with float residual adds;
  36 adds in a 2-layer Gemma 3, most inside RMSNorm and rotary embeddings: 0.911 vs 0.998).
* ``tensorrt``: the ``ort_ov`` placement with symmetric int8 activations (TensorRT's Q/DQ rules).
* ``full_integer_16x8`` (LiteRT's 16x8 mode, ``tflite`` with ``options: {activations: int16}``): every activation
  int16 (zero point 0), weights int8 per channel. The elementwise kinds are quantized too, their constant operands
  (``weights``) on the int16 grid, after :mod:`.rewrites` gave GELU, LayerNorm, scalar operands and broadcasting
  adds forms with int16 kernels: litert-torch cannot requantize between int8 and int16, so nothing on the
  integer path may stay int8.

The model's own output stays float in every profile: requantizing logits to 8 bits flips near-tied top-1s.
Attention probabilities are on LiteRT's fixed grid under ``full_integer`` (1/256) and ``full_integer_16x8``
(1/32768) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...registry import Registry

INPUTS, WEIGHTS, OUTPUT, CHAINED = "inputs", "weights", "output", "chained"


@dataclass(frozen=True)
class Profile:
    name: str
    roles: dict[str, frozenset[str]] = field(default_factory=dict)  # op kind -> {inputs, weights, output}
    symmetric: bool | None = None  # force symmetric activations (None: the recipe decides)
    # attention probabilities on the fixed 1/256 grid (LiteRT's int8 SOFTMAX takes no other output scale); a
    # calibrated range is finer where probabilities are small (197 tokens: ~1/197 is 1.3 steps of 1/256)
    fixed_probabilities: bool = False
    # attention's scores product (Q·Kᵀ) quantized at Q's and K's producers (symmetric int8), before their head
    # reshapes and transposes, and P·V float: the placement OpenVINO's fused MHA kernel runs in int8
    scores_only: bool = False
    # a convolution's zero padding (TF-style "same", padded in forward) on the integer side of its Q/DQ, so the
    # runtime folds the pad into the convolution (OpenVINO); exact, since 0 is on every activation grid
    pads_inside: bool = False
    # 16: int16 activations (LiteRT 16x8); weights stay int8
    activation_bits: int = 8
    # :data:`.rewrites.REWRITES` applied in order to this profile's copy of the captured graph before annotation
    rewrites: tuple[str, ...] = ()
    description: str = ""

    def wants(self, kind: str, role: str) -> bool:
        return role in self.roles.get(kind, frozenset())

    def with_outputs(self) -> Profile:
        """This placement with the output of every op it quantizes quantized too (``quantize_outputs``)."""
        roles = {k: v | {OUTPUT} if k in _MATMULS and v else v for k, v in self.roles.items()}
        return replace(self, roles=roles)


PROFILES: Registry[Profile] = Registry("quantization profile")

_MATMULS = ("linear", "conv", "addmm", "matmul", "attention")
_IN_W = frozenset({INPUTS, WEIGHTS})
_ALL = frozenset({INPUTS, WEIGHTS, OUTPUT})
_IN_OUT = frozenset({INPUTS, OUTPUT})
# ONNX Runtime / OpenVINO: float out of matmuls, integer chains of convolutions
_X86 = {**{k: _IN_W for k in _MATMULS}, "conv": _ALL, "embedding": frozenset({WEIGHTS}), "add": frozenset({CHAINED})}

PROFILES.add(
    "ort_ov",
    Profile(
        "ort_ov",
        _X86,
        description="inputs and weights of linear/matmul (attention included); convolutions requantized after "
        "their ReLU, adds between them chained; int8 embedding tables",
    ),
)
PROFILES.add(
    "onnxruntime",
    Profile(
        "onnxruntime",
        {k: v for k, v in _X86.items() if k != "embedding"},
        description="the ort_ov placement with float embedding tables: ONNX Runtime has no int8 Gather, so an "
        "int8 table is dequantized whole on every run (a side-by-side MiniLM check: p50 25.5 ms vs 9.9 ms with "
        "float tables)",
    ),
)
PROFILES.add(
    "openvino",
    Profile(
        "openvino",
        _X86,
        scores_only=True,
        pads_inside=True,
        description="the ort_ov placement with attention's Q·Kᵀ quantized at Q's and K's producers and P·V float "
        "(as NNCF places them; OpenVINO's CPU plugin fuses that attention into its int8 MHA kernel); a "
        "convolution's zero padding between its Q/DQ and the convolution, which OpenVINO folds; int8 embedding "
        "tables",
    ),
)
_FULL = {**{k: _ALL for k in _MATMULS}, "embedding": frozenset({WEIGHTS, OUTPUT}), "add": frozenset({CHAINED})}
PROFILES.add(
    "full_integer",
    Profile(
        "full_integer",
        _FULL,
        fixed_probabilities=True,
        description="every tensor on the integer path: matmul/conv inputs, weights and outputs, embeddings, adds",
    ),
)
PROFILES.add(
    "full_integer_16x8",
    Profile(
        "full_integer_16x8",
        {**_FULL, "add": _ALL, "sub": _ALL, "mul": _ALL, "mean": _IN_OUT, "rsqrt": _IN_OUT, "sigmoid": _IN_OUT},
        symmetric=True,
        fixed_probabilities=True,
        activation_bits=16,
        rewrites=("gelu_sigmoid", "layer_norm_ops", "concat_as_adds", "scalar_operands", "broadcast_adds"),
        description="LiteRT 16x8: the full_integer placement with int16 activations and int8 weights, LayerNorm, "
        "GELU (tanh form) and elementwise ops with constants on int16 too",
    ),
)
PROFILES.add(
    "tensorrt",
    Profile(
        "tensorrt",
        _X86,
        symmetric=True,
        description="the ort_ov placement with symmetric int8 activations (TensorRT's Q/DQ rules)",
    ),
)

DEFAULT_PROFILE = "ort_ov"
