"""The image branch: standardized image features -> fully connected layers -> the common space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fglab.config import ModelConfig


class ImageBranch(nn.Module):
    """Standardize (training mean/std, kept as buffers), then Linear-BN-ReLU-Dropout-Linear."""

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, config.hidden_dim),
            nn.BatchNorm1d(config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.embed_dim),
        )

    def set_standardization(self, features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float32)
        self.mean.copy_(torch.from_numpy(features.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(features.std(axis=0), 1e-6)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std)
