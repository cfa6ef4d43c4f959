"""Neural-network helpers shared across layers: affine folding (:mod:`.fold`), attention discovery
(:mod:`.attention`) and transformer sites (:mod:`.sites`).

This package sits below the architectures, transforms, quantization and training, and imports none of them, so
each of those can use it without importing another.
"""
