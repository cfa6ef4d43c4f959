"""Calibration, training and validation data (see calibration/ for the scripts that fetch it)."""

from .base import DATA, DataSet, check_inputs, data_dir, load_data

__all__ = ["DATA", "DataSet", "check_inputs", "data_dir", "load_data"]
