"""fglab: text<->image retrieval with fine-grained labels learned by a siamese network."""

from __future__ import annotations

from fglab.hardware import prefer_passive_wait

__version__ = "0.1.0"

# Before anything imports torch: idle OpenMP threads sleep instead of spinning on shared cores
# (unless OMP_WAIT_POLICY or FGLAB_THREAD_POLICY=fixed is set; fglab.hardware says why).
prefer_passive_wait()
