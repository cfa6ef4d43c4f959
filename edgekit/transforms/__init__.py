"""Model transforms: every transform is ``apply(model, options) -> model`` and is registered by name.

Recipes list them under ``transforms:``; the report records which ran and what each changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..registry import Registry

Transform = Callable[[torch.nn.Module, dict[str, Any]], torch.nn.Module]
TRANSFORMS: Registry[Transform] = Registry("transform")
