"""Quantization: range estimators, calibration, the encodings spec and the fake-quant simulation."""

from .calibrate import Calibrated, calibrate
from .encodings import Encoding, EncodingSet

__all__ = ["Calibrated", "Encoding", "EncodingSet", "calibrate"]
