"""The siamese text network and the cross-modal model, both built from the branches."""

from __future__ import annotations

import torch
from scipy import sparse
from torch import nn

from fglab.config import ModelConfig
from fglab.models.image_branch import ImageBranch
from fglab.models.scorer import DualPathScorer, bounded, unit
from fglab.models.text_branch import TextBranch

CLASS_LOGIT_SCALE = 10.0  # unit-length inputs: scaled so that softmax can become confident


class SiameseTextNetwork(nn.Module):
    """One text branch applied to both texts of a pair (shared weights), scored like the
    cross-modal model. Its similarities grade how hard each training pair is."""

    def __init__(
        self, n_words: int, config: ModelConfig, laplacian: sparse.spmatrix | None,
        n_sentence: int = 0,
    ):
        super().__init__()
        self.text = TextBranch(n_words, config, laplacian, n_sentence)
        self.scorer = DualPathScorer(config.embed_dim, config.dropout, config.score_dropout)

    def embed(self, texts: torch.Tensor) -> torch.Tensor:
        return unit(self.text(texts))

    def all_pairs(self, texts: torch.Tensor) -> torch.Tensor:
        e = self.embed(texts)
        return self.scorer.all_pairs(e, e)


class CrossModalNetwork(nn.Module):
    """Text and image branches into one space, scored by the dual-path scorer."""

    def __init__(
        self,
        n_words: int,
        n_image_features: int,
        config: ModelConfig,
        laplacian: sparse.spmatrix | None,
        n_classes: int = 0,
        n_image_landmarks: int = 0,
        n_sentence: int = 0,
    ):
        super().__init__()
        self.text = TextBranch(n_words, config, laplacian, n_sentence)
        self.image = ImageBranch(n_image_features, config, n_image_landmarks)
        self.embedding, self.embedding_scale = config.embedding, config.embedding_scale
        if self.embedding == "auto":
            self.embedding = "bounded" if n_image_landmarks > 0 else "unit"
        self.scorer = DualPathScorer(config.embed_dim, config.dropout, config.score_dropout)
        # Optional semantic supervision: one linear classifier shared by both branches. With
        # ``semantic_weight`` > 0 it also scores: see ``semantic_codes``.
        self.classifier = nn.Linear(config.embed_dim, n_classes) if n_classes else None
        self.semantic_weight = config.semantic_weight or 0.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """A branch output as an embedding (unit length, or bounded length)."""
        return unit(x) if self.embedding == "unit" else bounded(x, self.embedding_scale)

    def forward(self, texts: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Text and image embeddings and their (n_texts, n_images) scores."""
        return self.from_image_inputs(texts, self.image.fixed_input(images))

    def from_image_inputs(
        self, texts: torch.Tensor, image_inputs: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """As ``forward``, with images already through ``image.fixed_input``."""
        t, v = self.embed(self.text(texts)), self.embed(self.image.head(image_inputs))
        return t, v, self.scorer.all_pairs(t, v)

    def all_pairs(self, texts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """(n_texts, n_images) scores."""
        return self(texts, images)[2]

    def class_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("this network was built without a classifier (n_classes=0)")
        return self.classifier(embeddings * CLASS_LOGIT_SCALE)

    def semantic_codes(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Class posteriors of embeddings, centered on the uniform posterior and cut to unit
        length: the inner product of two codes is the normalized correlation of the
        posteriors that semantic matching ranks by (Rasiwasia et al., 2010)."""
        posteriors = torch.softmax(self.class_logits(embeddings).float(), dim=-1)
        return unit(posteriors - 1.0 / posteriors.shape[-1])

    def _with_semantics(self, encoded: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``encoded`` followed by the weighted semantic codes, so that one inner product
        gives score + semantic_weight * posterior correlation (ranking ignores the bias)."""
        if self.classifier is None or self.semantic_weight <= 0:
            return encoded
        codes = self.semantic_codes(embeddings) * self.semantic_weight**0.5
        return torch.cat([encoded.float(), codes], dim=-1)

    def encode_texts(self, texts: torch.Tensor) -> torch.Tensor:
        t = self.embed(self.text(texts))
        return self._with_semantics(self.scorer.fold(t), t)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        v = self.embed(self.image(images))
        return self._with_semantics(v, v)
