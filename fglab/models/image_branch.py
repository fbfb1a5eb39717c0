"""The image branch: standardized image features -> (RBF kernel features) -> fully connected
layers -> the common space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fglab.config import ModelConfig
from fglab.models.kernel_map import RBFKernelMap


class ImageBranch(nn.Module):
    """Standardize (training mean/std, kept as buffers); with ``n_landmarks`` > 0 map to RBF
    kernel features and apply dropout and one linear map; otherwise input dropout, then
    Linear-BN-ReLU-Dropout-Linear, or (``image_hidden_dim=0``) dropout and one linear map."""

    def __init__(self, n_features: int, config: ModelConfig, n_landmarks: int = 0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        # Input dropout would distort the kernel's distances: the MLP alone gets it.
        input_dropout = config.image_input_dropout if n_landmarks == 0 else 0.0
        self.input_dropout = nn.Dropout(input_dropout)
        self.kernel: RBFKernelMap | None = None
        width = n_features
        if n_landmarks > 0:
            self.kernel = RBFKernelMap(
                n_features, n_landmarks, config.image_kernel_gamma / n_features
            )
            width = n_landmarks
        hidden = config.image_hidden_dim if n_landmarks == 0 else 0
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(width, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(hidden, config.embed_dim),
            )
        else:  # on kernel features (or weak features) a linear map overfits less
            self.net = nn.Sequential(
                nn.Dropout(config.dropout / 2), nn.Linear(width, config.embed_dim)
            )

    @property
    def n_landmarks(self) -> int:
        return self.kernel.out_features if self.kernel is not None else 0

    def fit_input_map(self, features: np.ndarray, seed: int = 0) -> None:
        """Learn the standardization and, if there is one, the kernel map, from training
        images."""
        features = np.asarray(features, dtype=np.float32)
        self.mean.copy_(torch.from_numpy(features.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(features.std(axis=0), 1e-6)))
        if self.kernel is not None:
            with torch.no_grad():
                standardized = self.standardize(torch.from_numpy(features)).numpy()
            self.kernel.fit(standardized, seed)

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def fixed_input(self, features: torch.Tensor) -> torch.Tensor:
        """The branch's first part, which has no trainable weights and no randomness (the
        kernel branch has no input dropout): standardization, then the kernel map. Training
        computes it once for all images instead of every step."""
        x = self.standardize(features)
        return self.kernel(x) if self.kernel is not None else x

    def head(self, fixed: torch.Tensor) -> torch.Tensor:
        """The trainable rest, on ``fixed_input`` rows."""
        return self.net(fixed if self.kernel is not None else self.input_dropout(fixed))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.fixed_input(features))
