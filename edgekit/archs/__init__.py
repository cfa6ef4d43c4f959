"""Architecture families and the model loader (``load_model``)."""

from .base import ARCHS, ArchFamily, ModelBundle
from .loader import load_model

__all__ = ["ARCHS", "ArchFamily", "ModelBundle", "load_model"]
