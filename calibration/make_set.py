#!/usr/bin/env python3
"""Build a class-balanced calibration or validation set (.npz) for a recipe's data spec (``source: npz``).

From an image folder, IDX files, NumPy arrays or a labelled text CSV; fixed seed; cached by content hash under
$EDGEKIT_DATA/sets. The logic lives in ``edgekit.data.sets`` (also runnable as ``python -m edgekit.data.sets``);
see calibration/README.md.

    python calibration/make_set.py ~/.cache/edgekit/fashion-mnist/train-images-idx3-ubyte.gz \\
        --labels ~/.cache/edgekit/fashion-mnist/train-labels-idx1-ubyte.gz --samples 512 --out runs/sets/calib.npz
"""

import sys

from edgekit.data.sets import main

if __name__ == "__main__":
    sys.exit(main())
