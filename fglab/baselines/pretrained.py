"""Zero-shot search: the pretrained image-text model's own space, as it is (no training), as
clip-retrieval serves it. Its views are both towers of one model (``image:clip`` and
``text:clip``, with ``--model-path``): an image and a text are compared by the cosine of
their embeddings."""

from __future__ import annotations

import numpy as np

from fglab.baselines.persist import SavedAsArrays
from fglab.features.featureset import FeatureSet
from fglab.method import RetrievalMethod, unit_rows


class ZeroShotRetrieval(SavedAsArrays, RetrievalMethod):
    """Ranks by the cosine of the pretrained model's image and text embeddings; ``fit`` only
    checks that both sides live in one space of ``dim_`` dimensions."""

    fixed_views = ("image:clip", "text:clip")

    def fit(self, train: FeatureSet, validation: FeatureSet | None = None) -> ZeroShotRetrieval:
        images, texts = train.images.shape[1], train.texts.shape[1]
        if images != texts:
            raise ValueError(
                f"pretrained compares the two towers of one model, but got {images}-d image "
                f"and {texts}-d text features: use image:clip and text:clip (--model-path DIR)"
            )
        self.dim_ = int(images)
        return self

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return unit_rows(images)

    def encode_texts(self, texts) -> np.ndarray:
        return unit_rows(texts)
