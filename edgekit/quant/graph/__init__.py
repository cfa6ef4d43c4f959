"""edgekit's INT8 quantizer (``quantizer: edgekit``, the default): quantize the graph, not the modules.

capture (:mod:`.capture`) -> annotate by op pattern under a target profile (:mod:`.annotate`, :mod:`.profiles`)
-> ``prepare_pt2e`` with edgekit's range estimators as observers (:mod:`.observers`) -> calibrate ->
``convert_pt2e`` (:mod:`.quantize`). The converted program is the run's simulated model and every target lowers it
(:mod:`edgekit.targets.pt2e_lowering`); its scales are read into ``encodings.json``.
"""

from .profiles import PROFILES, Profile
from .quantize import graph_quantize, graph_quantize_profiles, merge_encodings

__all__ = ["PROFILES", "Profile", "graph_quantize", "graph_quantize_profiles", "merge_encodings"]
