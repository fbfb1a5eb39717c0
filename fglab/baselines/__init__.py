"""Classic comparison methods, estimator style, scikit-learn inside."""

from __future__ import annotations

from fglab.baselines.correlation import CCARetrieval, PLSRetrieval
from fglab.baselines.pretrained import ZeroShotRetrieval
from fglab.baselines.random_ranking import RandomRetrieval
from fglab.baselines.semantic import SemanticCorrelationMatching, SemanticMatching

__all__ = [
    "CCARetrieval",
    "PLSRetrieval",
    "RandomRetrieval",
    "SemanticCorrelationMatching",
    "SemanticMatching",
    "ZeroShotRetrieval",
]
