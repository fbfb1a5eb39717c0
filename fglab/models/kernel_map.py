"""RBF kernel features of image vectors (Nyström), as a torch module the model can save.

Weak global image features such as a 128-d SIFT bag of visual words separate the categories
far better through an RBF kernel than linearly (an RBF SVM beats logistic regression on
them). scikit-learn's ``Nystroem`` fits the map; this module replays its ``transform`` on
tensors so the landmarks travel inside the model's safetensors weights.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.kernel_approximation import Nystroem
from torch import nn


class RBFKernelMap(nn.Module):
    """x -> exp(-gamma |x - l_j|^2) over ``n_landmarks`` landmarks, times the Nyström
    normalization (so that inner products of outputs approximate the RBF kernel), then
    standardized with the training outputs' mean and std: the raw features are tiny, and a
    layer on them would barely learn."""

    def __init__(self, n_features: int, n_landmarks: int, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("landmarks", torch.zeros(n_landmarks, n_features))
        self.register_buffer("normalization", torch.eye(n_landmarks))
        self.register_buffer("mean", torch.zeros(n_landmarks))
        self.register_buffer("std", torch.ones(n_landmarks))

    @property
    def out_features(self) -> int:
        return int(self.landmarks.shape[0])

    def fit(self, features: np.ndarray, seed: int) -> RBFKernelMap:
        """Fit scikit-learn's Nyström map on ``features`` (n >= the number of landmarks)."""
        if len(features) < self.out_features:
            raise ValueError(
                f"the RBF kernel map needs at least {self.out_features} training images, "
                f"got {len(features)}"
            )
        nystroem = Nystroem(
            kernel="rbf", gamma=self.gamma, n_components=self.out_features, random_state=seed
        ).fit(np.asarray(features, dtype=np.float64))
        self.landmarks.copy_(torch.from_numpy(nystroem.components_.astype(np.float32)))
        self.normalization.copy_(torch.from_numpy(nystroem.normalization_.astype(np.float32)))
        with torch.no_grad():
            mapped = self._map(torch.from_numpy(np.asarray(features, dtype=np.float32)))
        self.mean.copy_(mapped.mean(dim=0))
        self.std.copy_(mapped.std(dim=0, unbiased=False).clamp_min(1e-6))
        return self

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(x, self.landmarks).square()
        return torch.exp(-self.gamma * distances) @ self.normalization.T

    @torch.autocast("cpu", enabled=False)  # exp(-gamma d^2) of bfloat16 distances is too coarse
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._map(x.float()) - self.mean) / self.std
