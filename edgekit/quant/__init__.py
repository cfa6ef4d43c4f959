"""Quantization: range estimators, calibration, the encodings spec and the fake-quant simulation."""

from .calibrate import Calibrated, calibrate, simulate
from .encodings import Encoding, EncodingSet

__all__ = ["Calibrated", "Encoding", "EncodingSet", "calibrate", "simulate"]
