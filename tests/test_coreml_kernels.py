"""Each reference-interpreter kernel against a numpy / torch formula, on a one-op MIL program."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("coremltools", reason="coreml extra not installed (pip install 'edgekit[coreml]')")

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((1, 3, 7, 6)).astype(np.float32)
X3 = RNG.standard_normal((2, 5, 4)).astype(np.float32)


def _run(shape, build, x):
    """A program with one input of ``shape`` whose body is ``build(mb, x)``, run by the reference interpreter."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from edgekit.targets.coreml_reference import ReferenceProgram

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS17)
    def prog(x):
        return build(mb, x)

    return ReferenceProgram(program=prog).run_one({"x": x})


def _t(x):
    return torch.from_numpy(x)


CASES = {
    "silu": (X3, lambda mb, x: mb.silu(x=x), lambda x: F.silu(_t(x)).numpy()),
    "reduce_l2_norm": (
        X3,
        lambda mb, x: mb.reduce_l2_norm(x=x, axes=[-1], keep_dims=True),
        lambda x: np.linalg.norm(x, axis=-1, keepdims=True),
    ),
    "reduce_log_sum_exp": (
        X3,
        lambda mb, x: mb.reduce_log_sum_exp(x=x, axes=[1]),
        lambda x: torch.logsumexp(_t(x), 1).numpy(),
    ),
    "batch_norm": (
        X4,
        lambda mb, x: mb.batch_norm(
            x=x,
            mean=np.array([0.1, -0.2, 0.3], np.float32),
            variance=np.array([1.0, 2.0, 0.5], np.float32),
            gamma=np.array([1.5, 1.0, -1.0], np.float32),
            beta=np.array([0.0, 0.5, 1.0], np.float32),
            epsilon=1e-3,
        ),
        lambda x: F.batch_norm(
            _t(x),
            torch.tensor([0.1, -0.2, 0.3]),
            torch.tensor([1.0, 2.0, 0.5]),
            torch.tensor([1.5, 1.0, -1.0]),
            torch.tensor([0.0, 0.5, 1.0]),
            eps=1e-3,
        ).numpy(),
    ),
    "max_pool_same": (
        X4,
        lambda mb, x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="same"),
        lambda x: F.max_pool2d(F.pad(_t(x), [0, 1, 1, 1], value=-np.inf), 3, 2).numpy(),
    ),
    "max_pool_ceil": (
        X4,
        lambda mb, x: mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", ceil_mode=True),
        lambda x: F.max_pool2d(_t(x), 2, 2, ceil_mode=True).numpy(),
    ),
    "avg_pool_exclude_pad": (
        X4,
        lambda mb, x: mb.avg_pool(
            x=x,
            kernel_sizes=[3, 3],
            strides=[1, 1],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            exclude_padding_from_average=True,
        ),
        lambda x: F.avg_pool2d(_t(x), 3, 1, padding=1, count_include_pad=False).numpy(),
    ),
    "avg_pool_include_pad": (
        X4,
        lambda mb, x: mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]),
        lambda x: F.avg_pool2d(_t(x), 3, 2, padding=1, count_include_pad=True).numpy(),
    ),
    "conv_strided_same": (
        X4,
        lambda mb, x: mb.conv(x=x, weight=np.ones((2, 3, 3, 3), np.float32) / 9, strides=[2, 2], pad_type="same"),
        lambda x: F.conv2d(F.pad(_t(x), [0, 1, 1, 1]), torch.ones(2, 3, 3, 3) / 9, stride=2).numpy(),
    ),
    "conv_transpose": (
        X4,
        lambda mb, x: mb.conv_transpose(
            x=x,
            weight=np.linspace(-1, 1, 3 * 2 * 9, dtype=np.float32).reshape(3, 2, 3, 3),
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 1, 1, 1],
        ),
        lambda x: F.conv_transpose2d(
            _t(x), torch.linspace(-1, 1, 3 * 2 * 9).reshape(3, 2, 3, 3), stride=2, padding=1
        ).numpy(),
    ),
    "instance_norm": (
        X4,
        lambda mb, x: mb.instance_norm(x=x, epsilon=1e-5),
        lambda x: F.instance_norm(_t(x), eps=1e-5).numpy(),
    ),
    "gather_nd": (
        X3,
        lambda mb, x: mb.gather_nd(x=x, indices=np.array([[1, 4], [0, 2], [1, 0]], np.int32)),
        lambda x: x[[1, 0, 1], [4, 2, 0]],
    ),
    "gather_nd_batch_dims": (
        X3,
        lambda mb, x: mb.gather_nd(x=x, indices=np.array([[[3], [1]], [[0], [0]]], np.int32), batch_dims=1),
        lambda x: np.stack([x[0, [3, 1]], x[1, [0, 0]]]),
    ),
    "scatter_add": (
        X3,
        lambda mb, x: mb.scatter(
            data=x,
            indices=np.array([1, 1, 3], np.int32),
            updates=np.ones((2, 3, 4), np.float32),
            axis=1,
            mode="add",
        ),
        lambda x: _t(x).index_add(1, torch.tensor([1, 1, 3]), torch.ones(2, 3, 4)).numpy(),
    ),
    "scatter_nd_update": (
        X3,
        lambda mb, x: mb.scatter_nd(
            data=x,
            indices=np.array([[0, 1], [1, 4]], np.int32),
            updates=np.zeros((2, 4), np.float32),
            mode="update",
        ),
        lambda x: np.where(np.isin(np.arange(10).reshape(2, 5), [1, 9])[..., None], 0.0, x),
    ),
    "upsample_bilinear": (
        X4,
        lambda mb, x: mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=True),
        lambda x: F.interpolate(_t(x), scale_factor=2, mode="bilinear", align_corners=True).numpy(),
    ),
    "upsample_nearest_neighbor": (
        X4,
        lambda mb, x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3),
        lambda x: F.interpolate(_t(x), scale_factor=(2, 3), mode="nearest").numpy(),
    ),
    "l2_norm": (X3, lambda mb, x: mb.l2_norm(x=x, epsilon=1e-6), lambda x: x / np.sqrt((x**2).sum() + 1e-6)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_formula(name):
    x, build, formula = CASES[name]
    got = _run(x.shape, build, x)
    want = formula(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
