"""fglab over a pretrained image-text model's towers (``image:clip``, ``text:tfidf+clip``):
the model's own cosine of image and text (the zero-shot score) added to fglab's score, with a
weight chosen on validation (``model.pretrained_weight``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fglab.config import PRETRAINED_WEIGHTS
from fglab.method import unit_rows


def check_towers(weight: float | None, image_width: int, text_width: int) -> None:
    """A ValueError unless the zero-shot score, if ``weight`` may use it (null or > 0), has one
    model's towers: image features and the text view's embedding columns of one width."""
    if (weight is None or weight > 0) and image_width != text_width:
        raise ValueError(
            "model.pretrained_weight adds a pretrained model's own cosine to the score: it "
            "needs both towers of one model, image:clip and text:tfidf+clip (--model-path), "
            f"got {image_width}-d images and a {text_width}-d text embedding"
        )


def zero_shot_texts(texts, n_words: int) -> np.ndarray:
    """The unit-length pretrained embedding of each text: the columns after the words."""
    return unit_rows(texts[:, n_words:])


def with_zero_shot(encoded: np.ndarray, weight: float | None,
                   zero_shot: Callable[[], np.ndarray]) -> np.ndarray:
    """``encoded`` followed by sqrt(``weight``) times the unit zero-shot embedding (computed
    only if ``weight`` > 0): inner products become fglab's score plus ``weight`` times the
    pretrained model's cosine."""
    if not weight:
        return encoded
    return np.hstack([encoded, np.float32(np.sqrt(weight)) * zero_shot()])


def weight_scores(
    encoded: tuple[np.ndarray, np.ndarray], zero_shot: tuple[np.ndarray, np.ndarray],
    labels: np.ndarray, score: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
) -> dict[float, float]:
    """``score(images, texts, labels)`` of the validation pairs for each weight in
    PRETRAINED_WEIGHTS, from fglab's ``encoded`` (images, texts) and the ``zero_shot`` ones."""
    return {
        weight: score(with_zero_shot(encoded[0], weight, lambda: zero_shot[0]),
                      with_zero_shot(encoded[1], weight, lambda: zero_shot[1]), labels)
        for weight in PRETRAINED_WEIGHTS
    }
