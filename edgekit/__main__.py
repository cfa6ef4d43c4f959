"""``python -m edgekit``: the same command as the ``edgekit`` script."""

import sys

from .cli import main

sys.exit(main())
