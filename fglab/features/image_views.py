"""Image views computed from a data set's image files, e.g. ``image:efficientnet-lite0``, or
``image:clip`` (the image tower of the model folder given with ``--model-path``,
:mod:`fglab.features.pretrained`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from fglab.data.dataset import Split
from fglab.features.image import ImageExtractor, extract, features_of_bytes
from fglab.features.model_folder import current_folder
from fglab.features.store import open_store

logger = logging.getLogger(__name__)

#: Each at the input size it was trained for; all give IMAGE_FEATURE_DIM-d pooled features.
IMAGE_FEATURE_DIM = 1280
IMAGE_VIEWS: dict[str, ImageExtractor] = {
    "image:efficientnet-lite0": ImageExtractor("efficientnet-lite0", image_size=224),
    "image:efficientnet-lite1": ImageExtractor("efficientnet-lite1", image_size=240),
    "image:efficientnet-lite2": ImageExtractor("efficientnet-lite2", image_size=260),
}
#: The image tower of the current model folder (its extractor depends on the folder).
PRETRAINED_IMAGE_VIEW = "image:clip"


def image_extractor(view: str) -> ImageExtractor:
    if view == PRETRAINED_IMAGE_VIEW:
        from fglab.features.pretrained import image_extractor as pretrained_extractor

        return pretrained_extractor(current_folder(view))
    if view not in IMAGE_VIEWS:
        raise ValueError(
            f"unknown image view {view!r}; computed image views: {', '.join(IMAGE_VIEWS)}, "
            f"{PRETRAINED_IMAGE_VIEW} (with --model-path), or several side by side "
            "(image:efficientnet-lite0+efficientnet-lite2)"
        )
    return IMAGE_VIEWS[view]


def model_loader(view: str) -> Callable[[], nn.Module] | None:
    """What loads the model of a pretrained view, on first use (None for the others:
    :func:`extract` loads theirs itself)."""
    if view != PRETRAINED_IMAGE_VIEW:
        return None
    from fglab.features.pretrained import towers

    folder = current_folder(view)
    return lambda: towers(folder).image


def image_view_parts(view: str) -> list[str]:
    """The computed views that ``view`` joins side by side: ``image:A+B`` -> [image:A,
    image:B] (each checked); a single view -> [view]."""
    if not view.startswith("image:"):
        image_extractor(view)  # the error names the known views
    parts = [f"image:{name}" for name in view.removeprefix("image:").split("+")]
    for part in parts:
        image_extractor(part)
    if len(set(parts)) != len(parts):
        raise ValueError(f"image view {view!r} names a part twice")
    return parts


def image_view_width(view: str) -> int:
    """The width of a computed image view (the sum of its parts' widths)."""
    return sum(image_extractor(part).dim for part in image_view_parts(view))


def extract_image_features(
    paths: list[Path],
    view: str,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, dict[int, str]]:
    """Features for every row (zeros where a file failed) and {row index: reason} for the
    failures. Stored in the feature store under ``cache_dir`` (default:
    ``$FGLAB_CACHE/features`` or ``~/.cache/fglab/features``) by file content and extractor.
    A joined view (``image:A+B``) is each part's features side by side; a file that failed
    in any part fails."""
    rows, failures = [], {}
    for part in image_view_parts(view):
        extractor = image_extractor(part)
        cache = open_store(extractor.cache_name, cache_dir)
        features, failed = extract(list(paths), extractor, cache, progress=progress,
                                   loader=model_loader(part))
        rows.append(features)
        failures = {**failed, **failures}
    joined = np.hstack(rows) if len(rows) > 1 else rows[0]
    if len(rows) > 1:
        joined[list(failures)] = 0.0
    return joined, failures


def image_features_of_bytes(data: bytes, view: str) -> np.ndarray:
    """(dim,) features of one image held in memory; ImageProblem (a ValueError) if it cannot
    be decoded. Not cached: uploads are not kept."""
    parts = []
    for part in image_view_parts(view):
        if part == PRETRAINED_IMAGE_VIEW:
            from fglab.features.pretrained import image_of_bytes

            parts.append(image_of_bytes(current_folder(part), data))
        else:
            parts.append(features_of_bytes(data, image_extractor(part)))
    return np.concatenate(parts)


def extract_image_view(split: Split, view: str) -> np.ndarray:
    """Rows aligned with ``split``; every image that failed is logged with its id and reason
    and gets a zero row (the pair stays, so text and image rows keep their alignment)."""
    features, failures = extract_image_features(split.image_paths, view)
    for row, reason in failures.items():
        logger.warning("%s: [%s] image %s: %s", view, split.name, split.image_ids[row], reason)
    if failures:
        logger.warning(
            "%s: %d of %d %s images failed and got zero features",
            view, len(failures), len(split), split.name,
        )
    return features
