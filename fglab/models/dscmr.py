"""DSCMR's network (Zhen et al., CVPR 2019): one hidden layer per modality, a common
representation layer shared by both, and a shared linear classifier into the label space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class DSCMRNetwork(nn.Module):
    """u = C(relu(A v)) for images (standardized), t = C(relu(B x)) for texts; logits P u."""

    def __init__(
        self, image_dim: int, text_dim: int, hidden_dim: int, common_dim: int, n_classes: int
    ) -> None:
        super().__init__()
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))
        self.image = nn.Sequential(nn.Linear(image_dim, hidden_dim), nn.ReLU())
        self.text = nn.Sequential(nn.Linear(text_dim, hidden_dim), nn.ReLU())
        self.common = nn.Linear(hidden_dim, common_dim)  # shared: the common space
        self.classifier = nn.Linear(common_dim, n_classes, bias=False)  # shared: label space

    def fit_standardization(self, images: np.ndarray) -> None:
        images = np.asarray(images, dtype=np.float32)
        self.image_mean.copy_(torch.from_numpy(images.mean(axis=0)))
        self.image_std.copy_(torch.from_numpy(np.maximum(images.std(axis=0), 1e-6)))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.common(self.image((images - self.image_mean) / self.image_std))

    def encode_texts(self, texts: torch.Tensor) -> torch.Tensor:
        return self.common(self.text(texts))
