"""The image branch: standardized image features -> fully connected layers -> the common space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fglab.config import ModelConfig


class ImageBranch(nn.Module):
    """Standardize (training mean/std, kept as buffers), then Linear-BN-ReLU-Dropout-Linear,
    or (``image_hidden_dim=0``) dropout and one linear map."""

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        hidden = config.image_hidden_dim
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(n_features, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(hidden, config.embed_dim),
            )
        else:  # weak features (e.g. 128-d SIFT): a linear map overfits less
            self.net = nn.Sequential(
                nn.Dropout(config.dropout / 2), nn.Linear(n_features, config.embed_dim)
            )

    def set_standardization(self, features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float32)
        self.mean.copy_(torch.from_numpy(features.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(features.std(axis=0), 1e-6)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std)
