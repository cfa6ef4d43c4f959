from .quiet import quiet_coremltools

quiet_coremltools()  # before any coremltools import (edgekit/targets/quiet.py)
