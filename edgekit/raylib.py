"""Ray, imported on demand: the one place that names the package and the extra that installs it, for the
features that scale out on it (the ray sweep executor, data-parallel training, sharded validation)."""

from __future__ import annotations

from typing import Any

from .errors import EdgekitError, MissingBackendError


class MissingRayError(MissingBackendError):
    """Ray (or one of its libraries) is needed by a feature, not a target: the message names the feature."""

    def __init__(self, feature: str, module: str, extra: str):
        EdgekitError.__init__(
            self,
            f"{feature} needs the Python package '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'",
        )
        self.target, self.module, self.extra = feature, module, extra


def import_ray(feature: str = "the ray executor") -> Any:
    try:
        import ray
    except ImportError:
        raise MissingRayError(feature, "ray", "ray") from None
    return ray
