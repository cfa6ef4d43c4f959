"""``python RUNNER_DIR ARTIFACT ...`` (the runner directory copied alone to a device, what the ssh transport
does) or ``python -m edgekit.device.runner ARTIFACT ...``."""

import os
import sys

if __package__ in (None, ""):
    # Run as a directory: sys.path[0] is this directory. Import it as a package from its parent instead, so
    # its relative imports work and none of its modules can shadow a runtime's own.
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == _here:
        sys.path[0] = os.path.dirname(_here)
    else:
        sys.path.insert(0, os.path.dirname(_here))
    import importlib

    _cli = importlib.import_module(os.path.basename(_here) + ".cli")
else:
    from . import cli as _cli

sys.exit(_cli.main())
