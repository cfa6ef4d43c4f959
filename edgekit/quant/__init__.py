"""Quantization: range estimators, the graph quantizer (torch.export + PT2E), calibration and the encodings spec."""

from .calibrate import Calibrated, calibrate
from .encodings import Encoding, EncodingSet

__all__ = ["Calibrated", "Encoding", "EncodingSet", "calibrate"]
