"""RepVGG, MobileOne and FastViT-style (RepMixer) classifiers, small variants for 28x28 images.

Config keys (override with ``model.config`` / ``--config``): ``widths`` (one per stage), ``depths``,
``num_channels``, ``image_size``, ``num_labels``; MobileOne also ``branches`` (k), FastViT ``mlp_ratio``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .base import ARCHS, ArchFamily, ModelBundle
from .rep_blocks import Classifier, ConvFFN, RepConv, RepMixer
from .vit_blocks import image_bundle

DEFAULTS: dict[str, dict[str, Any]] = {
    "repvgg": {"widths": [16, 32, 64], "depths": [1, 2, 2]},
    "mobileone": {"widths": [16, 32, 64], "depths": [1, 2, 2], "branches": 2},
    "fastvit": {"widths": [24, 48, 96], "depths": [1, 2, 2], "mlp_ratio": 2.0},
}
COMMON = {"num_channels": 1, "image_size": 28, "num_labels": 10}


def _repvgg(cfg: dict[str, Any]) -> nn.Module:
    layers, cin = [], cfg["num_channels"]
    for width, depth in zip(cfg["widths"], cfg["depths"], strict=True):
        for i in range(depth):
            layers.append(RepConv(cin, width, 3, stride=2 if i == 0 else 1))
            cin = width
    return nn.Sequential(*layers)


def _mobileone(cfg: dict[str, Any]) -> nn.Module:
    n = cfg["branches"]
    layers: list[nn.Module] = [RepConv(cfg["num_channels"], cfg["widths"][0], 3, stride=2, n_kxk=n)]
    cin = cfg["widths"][0]
    for s, (width, depth) in enumerate(zip(cfg["widths"], cfg["depths"], strict=True)):
        for i in range(depth):
            stride = 2 if i == 0 and s > 0 else 1
            layers.append(RepConv(cin, cin, 3, stride=stride, groups=cin, n_kxk=n))  # depthwise
            layers.append(RepConv(cin, width, 1, n_kxk=n))  # pointwise
            cin = width
    return nn.Sequential(*layers)


class _FastViTBlock(nn.Module):
    def __init__(self, dim: int, ratio: float):
        super().__init__()
        self.mixer = RepMixer(dim)
        self.ffn = ConvFFN(dim, ratio)
        self.gamma = nn.Parameter(1e-5 * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(x)
        return x + self.gamma * self.ffn(x)


def _fastvit(cfg: dict[str, Any]) -> nn.Module:
    widths = cfg["widths"]
    layers: list[nn.Module] = [RepConv(cfg["num_channels"], widths[0], 3, stride=2, n_kxk=1)]
    cin = widths[0]
    for s, (width, depth) in enumerate(zip(widths, cfg["depths"], strict=True)):
        if s > 0:  # downsample: depthwise stride-2 + pointwise, both reparameterizable
            layers += [RepConv(cin, cin, 3, stride=2, groups=cin), RepConv(cin, width, 1)]
            cin = width
        layers += [_FastViTBlock(width, cfg["mlp_ratio"]) for _ in range(depth)]
    return nn.Sequential(*layers)


BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "repvgg": _repvgg,
    "mobileone": _mobileone,
    "fastvit": _fastvit,
}


def _builder(name: str):
    def build(overrides: dict[str, Any], task: str | None) -> ModelBundle:
        known = {**COMMON, **DEFAULTS[name]}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ModelError(f"'{name}' config has no field(s) {unknown}; valid: {', '.join(sorted(known))}")
        if task not in (None, "classification"):
            raise ModelError(f"'{name}' models are image classifiers; task '{task}' is not supported")
        cfg = {**known, **overrides}
        if len(cfg["widths"]) != len(cfg["depths"]):
            raise ModelError(f"'{name}': widths {cfg['widths']} and depths {cfg['depths']} differ in length")
        make = lambda c: Classifier(BUILDERS[name](c), c["widths"][-1], c["num_labels"])  # noqa: E731
        return image_bundle(name, make, cfg, transformer=False)

    return build


for _name, _desc in (
    ("repvgg", "RepVGG (3x3 + 1x1 + identity branches)"),
    ("mobileone", "MobileOne (k over-parameterized branches, depthwise/pointwise)"),
    ("fastvit", "FastViT-style RepMixer + ConvFFN"),
):
    ARCHS.add(_name, ArchFamily(_name, _builder(_name), _desc))
