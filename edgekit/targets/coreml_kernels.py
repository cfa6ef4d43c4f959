"""Numpy / torch kernels for the MIL ops whose coremltools value inference is missing or shape-bound.

The reference interpreter (``coreml_reference``) computes most ops with coremltools' own ``value_inference``.
It cannot for: ops that have none (conv, pooling, batch_norm, silu, gather_nd, scatter, dequantize), ops whose
value inference is broken for runtime values (``reduce_l2_norm``), and ops whose value inference reads the
*declared* input shape, which is symbolic in a flexible-shape program (``shape``, ``slice_by_index``, ...).
Each kernel follows the op's definition in coremltools (``converters/mil/mil/ops/defs``): padding modes,
defaults and output shapes as documented there.

A kernel is ``(args, op) -> value`` where ``args(name)`` is the runtime value of input ``name`` (None when the
op has no such input).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Args = Callable[[str], Any]
Kernel = Callable[[Args, Any], Any]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    def add(fn: Kernel) -> Kernel:
        for n in names:
            KERNELS[n] = fn
        return fn

    return add


def _t(x: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _dtype_like(y: torch.Tensor, x: Any) -> np.ndarray:
    return y.numpy().astype(np.asarray(x).dtype, copy=False)


def _ints(v: Any, n: int, default: int) -> list[int]:
    return [default] * n if v is None else [int(i) for i in np.atleast_1d(v)]


def spatial_pads(
    pad_type: str, pad: Any, size: list[int], kernel_eff: list[int], strides: list[int]
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim, as MIL's ``aggregated_pad`` defines valid/same/same_lower/custom."""
    n = len(size)
    if pad_type == "custom":
        p = _ints(pad, 2 * n, 0)
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for i, k, s in zip(size, kernel_eff, strides):
            total = max(0, s * math.ceil(i / s) - i + k - s)
            small = total // 2
            out.append((small, total - small) if pad_type == "same" else (total - small, small))
        return out
    return [(0, 0)] * n


def _torch_pad(pads: list[tuple[int, int]]) -> list[int]:
    return [v for before, after in reversed(pads) for v in (before, after)]  # last dim first


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@kernel("conv")
def conv(a: Args, op: Any) -> np.ndarray:
    x, w = _t(a("x")), _t(a("weight"))
    n = x.ndim - 2
    strides, dilations = _ints(a("strides"), n, 1), _ints(a("dilations"), n, 1)
    k_eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations)]
    pads = spatial_pads(str(a("pad_type") or "valid"), a("pad"), list(x.shape[2:]), k_eff, strides)
    x = F.pad(x, _torch_pad(pads))
    b = a("bias")
    y = _CONV[n](x, w, None if b is None else _t(b), stride=strides, dilation=dilations, groups=int(a("groups") or 1))
    return y.numpy()


@kernel("conv_transpose")
def conv_transpose(a: Args, op: Any) -> np.ndarray:
    """The full transposed convolution, cropped by the MIL padding (or to ``output_shape``), then the bias."""
    x, w = _t(a("x")), _t(a("weight"))
    n = x.ndim - 2
    strides, dilations = _ints(a("strides"), n, 1), _ints(a("dilations"), n, 1)
    full = _CONV_T[n](x, w, None, stride=strides, dilation=dilations, groups=int(a("groups") or 1))
    pad_type = str(a("pad_type") or "valid")
    size = list(x.shape[2:])
    out_shape = a("output_shape")
    y = full
    for d in range(n):
        length = full.shape[2 + d]
        if pad_type == "custom":
            p = _ints(a("pad"), 2 * n, 0)
            before, want = p[2 * d], length - p[2 * d] - p[2 * d + 1]
        elif pad_type == "same":
            want = strides[d] * size[d]
            before = (length - want) // 2
        else:
            before, want = 0, length
        if out_shape is not None:
            want = int(np.asarray(out_shape)[2 + d])
        y = y.narrow(2 + d, before, min(want, length - before))
        if y.shape[2 + d] < want:  # output_shape larger than the full result: zeros at the end
            pad = [0, 0] * (n - 1 - d) + [0, want - y.shape[2 + d]]
            y = F.pad(y, pad)
    b = a("bias")
    if b is not None:
        y = y + _t(b).reshape(1, -1, *([1] * n))
    return y.numpy()


def _mil_pool_out(size: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    total = before + after
    if not ceil_mode:
        return (size + total - k) // s + 1
    out = (size + total - k + s - 1) // s + 1
    if (out - 1) * s >= size + total / 2 and total > 0:
        out -= 1
    return out


def _pool_inputs(a: Args) -> tuple[torch.Tensor, list[int], list[int], list[tuple[int, int]], list[int]]:
    """Input, kernel, strides, MIL padding, and the extra tail padding that ceil mode needs per spatial dim."""
    x = _t(a("x"))
    n = x.ndim - 2
    ks, strides = _ints(a("kernel_sizes"), n, 1), _ints(a("strides"), n, 1)
    size = list(x.shape[2:])
    pads = spatial_pads(str(a("pad_type") or "valid"), a("pad"), size, ks, strides)
    ceil = bool(a("ceil_mode"))
    extra = []
    for i, k, s, (before, after) in zip(size, ks, strides, pads):
        out = _mil_pool_out(i, k, s, before, after, ceil)
        extra.append(max(0, (out - 1) * s + k - (i + before + after)))
    return x, ks, strides, pads, extra


@kernel("max_pool")
def max_pool(a: Args, op: Any) -> np.ndarray:
    x, ks, strides, pads, extra = _pool_inputs(a)
    x = F.pad(x, _torch_pad([(b, e + x_) for (b, e), x_ in zip(pads, extra)]), value=-math.inf)
    return _dtype_like(_MAX_POOL[len(ks)](x, ks, strides), a("x"))


@kernel("avg_pool")
def avg_pool(a: Args, op: Any) -> np.ndarray:
    """Sum over the window / count: MIL padding counts unless ``exclude_padding_from_average``; the ceil-mode
    tail beyond the padding never counts."""
    x, ks, strides, pads, extra = _pool_inputs(a)
    n = len(ks)
    real = torch.ones((1, 1, *x.shape[2:]))
    counted_pad = 0.0 if bool(a("exclude_padding_from_average")) else 1.0
    mask = F.pad(real, _torch_pad(pads), value=counted_pad)
    tail = _torch_pad([(0, e) for e in extra])
    mask, x = F.pad(mask, tail), F.pad(F.pad(x, _torch_pad(pads)), tail)
    area = float(np.prod(ks))
    sums = _AVG_POOL[n](x, ks, strides) * area
    count = _AVG_POOL[n](mask, ks, strides) * area
    return _dtype_like(sums / count.clamp(min=1.0), a("x"))


@kernel("batch_norm")
def batch_norm(a: Args, op: Any) -> np.ndarray:
    """Inference batch norm over axis 1 with the stored statistics."""
    x = np.asarray(a("x"))
    shape = [1, -1] + [1] * (x.ndim - 2)

    def param(name: str, default: float) -> np.ndarray:
        v = a(name)
        return np.asarray(default, np.float32) if v is None else np.asarray(v, np.float32).reshape(shape)

    eps = float(a("epsilon") if a("epsilon") is not None else 1e-5)
    y = (x - param("mean", 0.0)) / np.sqrt(param("variance", 1.0) + eps)
    return (y * param("gamma", 1.0) + param("beta", 0.0)).astype(x.dtype)


@kernel("instance_norm")
def instance_norm(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    axes = tuple(range(2, x.ndim))
    eps = float(a("epsilon") if a("epsilon") is not None else 1e-5)
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    shape = [1, -1] + [1] * (x.ndim - 2)
    g, b = a("gamma"), a("beta")
    y = y * (1.0 if g is None else np.asarray(g).reshape(shape)) + (0.0 if b is None else np.asarray(b).reshape(shape))
    return y.astype(x.dtype)


@kernel("l2_norm")
def l2_norm(a: Args, op: Any) -> np.ndarray:
    """x / sqrt(sum(x^2) + eps) over the last three dims; the leading ``rank - 3`` dims are batch."""
    x = np.asarray(a("x"))
    axes = tuple(range(x.ndim - 3, x.ndim))
    eps = float(a("epsilon") if a("epsilon") is not None else 1e-6)
    return (x / np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True) + eps)).astype(x.dtype)


@kernel("silu")
def silu(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    return (x / (1.0 + np.exp(-x.astype(np.float32)))).astype(x.dtype)


def _reduce(fn: Callable[..., np.ndarray]) -> Kernel:
    def run(a: Args, op: Any) -> np.ndarray:
        x = np.asarray(a("x"))
        axes = a("axes")
        axis = None if axes is None else tuple(int(v) for v in np.atleast_1d(axes))
        out = fn(x, axis=axis, keepdims=bool(a("keep_dims")))
        return np.asarray(out).astype(x.dtype, copy=False)

    return run


def _log_sum_exp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


for _name, _fn in {
    "reduce_mean": np.mean,
    "reduce_sum": np.sum,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(np.square(x), axis=axis, keepdims=keepdims),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": _log_sum_exp,
}.items():
    KERNELS[_name] = _reduce(_fn)


@kernel("gather_nd")
def gather_nd(a: Args, op: Any) -> np.ndarray:
    """``V = K[:-1] + D[batch_dims + K[-1]:]``: each index row picks a slice of ``x`` (after the batch dims)."""
    x, idx = np.asarray(a("x")), np.asarray(a("indices")).astype(np.int64)
    b = int(a("batch_dims") or 0)
    depth = idx.shape[-1]
    if b == 0:
        return x[tuple(np.moveaxis(idx, -1, 0))]
    xs = x.reshape(-1, *x.shape[b:])
    ids = idx.reshape(-1, *idx.shape[b:])
    out = np.stack([xi[tuple(np.moveaxis(ii, -1, 0))] for xi, ii in zip(xs, ids)])
    return out.reshape(idx.shape[:-1] + x.shape[b + depth :])


_SCATTER = {
    "update": None,
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


def _scatter_into(out: np.ndarray, where: tuple[Any, ...], updates: np.ndarray, mode: str) -> np.ndarray:
    ufunc = _SCATTER[mode]
    if ufunc is None:
        out[where] = updates
    else:
        ufunc.at(out, where, updates)
    return out


@kernel("scatter")
def scatter(a: Args, op: Any) -> np.ndarray:
    data = np.array(a("data"), copy=True)
    axis = int(a("axis") or 0) % data.ndim
    idx = np.asarray(a("indices")).astype(np.int64)
    moved = np.moveaxis(data, axis, 0)  # a view: writes land in data
    _scatter_into(moved, (idx,), np.moveaxis(np.asarray(a("updates")), axis, 0), str(a("mode") or "add"))
    return data


@kernel("scatter_nd")
def scatter_nd(a: Args, op: Any) -> np.ndarray:
    data = np.array(a("data"), copy=True)
    idx = np.asarray(a("indices")).astype(np.int64)
    return _scatter_into(data, tuple(np.moveaxis(idx, -1, 0)), np.asarray(a("updates")), str(a("mode") or "add"))


@kernel("scatter_along_axis")
def scatter_along_axis(a: Args, op: Any) -> np.ndarray:
    data = np.array(a("data"), copy=True)
    axis = int(a("axis") or 0) % data.ndim
    idx = np.asarray(a("indices")).astype(np.int64)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return _scatter_into(data, tuple(grid), np.asarray(a("updates")), str(a("mode") or "add"))


@kernel("upsample_nearest_neighbor")
def upsample_nearest(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    sh, sw = float(a("scale_factor_height") or 1), float(a("scale_factor_width") or 1)
    h, w = int(math.floor(x.shape[-2] * sh)), int(math.floor(x.shape[-1] * sw))
    rows = np.minimum((np.arange(h) / sh).astype(np.int64), x.shape[-2] - 1)
    cols = np.minimum((np.arange(w) / sw).astype(np.int64), x.shape[-1] - 1)
    return x[..., rows[:, None], cols[None, :]]


@kernel("upsample_bilinear")
def upsample_bilinear(a: Args, op: Any) -> np.ndarray:
    """``align_corners`` / ``half_pixel_centers`` as torch's bilinear interpolate (the source of this op)."""
    x = _t(a("x"))
    sh, sw = float(a("scale_factor_height") or 1), float(a("scale_factor_width") or 1)
    size = (int(math.floor(x.shape[-2] * sh)), int(math.floor(x.shape[-1] * sw)))
    align = bool(a("align_corners"))
    flat = x.reshape(-1, 1, *x.shape[-2:])
    y = F.interpolate(flat, size=size, mode="bilinear", align_corners=align)
    return _dtype_like(y.reshape(*x.shape[:-2], *size), a("x"))


@kernel("pixel_shuffle")
def pixel_shuffle(a: Args, op: Any) -> np.ndarray:
    return F.pixel_shuffle(torch.from_numpy(np.asarray(a("x"))), int(a("upscale_factor"))).numpy()


@kernel("pixel_unshuffle")
def pixel_unshuffle(a: Args, op: Any) -> np.ndarray:
    return F.pixel_unshuffle(torch.from_numpy(np.asarray(a("x"))), int(a("downscale_factor"))).numpy()


@kernel("one_hot")
def one_hot(a: Args, op: Any) -> np.ndarray:
    idx = np.asarray(a("indices")).astype(np.int64)
    depth = int(a("one_hot_vector_size"))
    axis = int(a("axis") if a("axis") is not None else -1)
    on, off = a("on_value"), a("off_value")
    on = 1 if on is None else on
    off = 0 if off is None else off
    hot = np.arange(depth) == idx[..., None]
    out = np.where(hot, on, off)
    return np.moveaxis(out, -1, axis if axis >= 0 else out.ndim + axis)


# Shape-bound ops: their value inference reads the declared (possibly symbolic) shape.


@kernel("shape")
def shape(a: Args, op: Any) -> np.ndarray:
    return np.array(np.shape(a("x")), dtype=np.int32)


@kernel("expand_dims")
def expand_dims(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    rank = x.ndim + len(np.atleast_1d(a("axes")))
    axes = sorted(int(v) % rank for v in np.atleast_1d(a("axes")))
    return np.expand_dims(x, tuple(axes))


@kernel("reshape")
def reshape(a: Args, op: Any) -> np.ndarray:
    """0 keeps the input's size at that position (MIL), -1 is inferred."""
    x = np.asarray(a("x"))
    shape = [int(v) for v in np.atleast_1d(a("shape"))]
    shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


@kernel("tile")
def tile(a: Args, op: Any) -> np.ndarray:
    return np.tile(np.asarray(a("x")), [int(r) for r in np.atleast_1d(a("reps"))])


@kernel("concat")
def concat(a: Args, op: Any) -> np.ndarray:
    values = [np.asarray(v) for v in a("values")]
    if all(v.ndim == 0 for v in values):  # scalars (shape pieces) concatenate into a vector
        values = [v.reshape(1) for v in values]
    axis = int(a("axis"))
    if bool(a("interleave")):  # [a0, b0, a1, b1, ...] along axis
        stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@kernel("select")
def select(a: Args, op: Any) -> np.ndarray:
    return np.where(np.asarray(a("cond")).astype(bool), a("a"), a("b"))


@kernel("fill_like")
def fill_like(a: Args, op: Any) -> np.ndarray:
    value = a("value")
    return np.full(np.shape(a("ref_tensor")), 0.0 if value is None else value, dtype=np.asarray(value).dtype)


@kernel("slice_by_size")
def slice_by_size(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    begin, size = np.atleast_1d(a("begin")).astype(np.int64), np.atleast_1d(a("size")).astype(np.int64)
    index = []
    for dim, (b, s) in enumerate(zip(begin, size)):
        b = b + x.shape[dim] if b < 0 else b
        index.append(slice(b, x.shape[dim] if s == -1 else b + s))
    return x[tuple(index)]


@kernel("slice_by_index")
def slice_by_index(a: Args, op: Any) -> np.ndarray:
    """begin/end/stride with begin_mask/end_mask/squeeze_mask, resolved against the runtime shape."""
    x = np.asarray(a("x"))
    n = x.ndim

    def masks(name: str) -> list[bool]:
        v = a(name)
        return [False] * n if v is None else [bool(m) for m in np.atleast_1d(v)]

    begin, end = np.atleast_1d(a("begin")).astype(np.int64), np.atleast_1d(a("end")).astype(np.int64)
    stride = np.atleast_1d(a("stride")).astype(np.int64) if a("stride") is not None else np.ones(n, np.int64)
    bm, em, sq = masks("begin_mask"), masks("end_mask"), masks("squeeze_mask")
    index: list[Any] = []
    for d in range(n):
        if sq[d]:
            index.append(int(begin[d]))
            continue
        s = int(stride[d])
        b = None if bm[d] else int(begin[d])
        e = None if em[d] else int(end[d])
        index.append(slice(b, e, s))
    return x[tuple(index)]


@kernel("flatten2d")
def flatten2d(a: Args, op: Any) -> np.ndarray:
    x = np.asarray(a("x"))
    axis = int(a("axis") if a("axis") is not None else 1) % max(x.ndim, 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


# Quantization: activation dequantize (the program's quantize ops have value inference).


def affine(q: Any, zp: Any, scale: Any, axis: Any) -> np.ndarray:
    q = np.asarray(q).astype(np.float32)
    zp = np.asarray(0 if zp is None else zp, np.float32)
    scale = np.asarray(scale, np.float32)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[int(axis or 0)] = -1
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.size > 1 else zp
    return (q - zp) * scale


@kernel("dequantize")
def dequantize(a: Args, op: Any) -> np.ndarray:
    return affine(a("input"), a("zero_point"), a("scale"), a("axis"))
