"""Neural-network helpers shared across layers: affine folding (:mod:`.fold`), attention discovery
(:mod:`.attention`), transformer sites (:mod:`.sites`), forward-hook capture of module outputs and of the running
module (:mod:`.capture`), module names and scopes (:mod:`.scopes`) and 1-bit weights by value (:mod:`.signs`).

This package sits below the architectures, transforms, quantization and training, and imports none of them, so
each of those can use it without importing another.
"""
