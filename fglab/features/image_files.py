"""Which image views are computed from image files, and the functions that compute them.

Kept apart from :mod:`fglab.features.image_views` so that asking costs no torch import: the
featurizers are looked up on first use.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: ``extract_image_features(paths, view, cache_dir=None, progress=False)`` -> (rows, failures)
ImageFeaturizer = Callable[..., tuple[np.ndarray, dict[int, str]]]
#: ``image_features_of_bytes(data, view)`` -> (dim,) features of one image held in memory;
#: a ValueError says why it cannot be read.
UploadFeaturizer = Callable[[bytes, str], np.ndarray]
#: Image views that ship as precomputed features: no image file can be turned into them.
SHIPPED_ONLY = ("image:sift",)


def default_image_featurizer() -> ImageFeaturizer:
    from fglab.features.image_views import extract_image_features

    return extract_image_features


def default_upload_featurizer() -> UploadFeaturizer:
    from fglab.features.image_views import image_features_of_bytes

    return image_features_of_bytes


def image_view_reads_files(view: str) -> bool:
    """Whether an image view is computed from image files (shipped SIFT features are not)."""
    return view not in SHIPPED_ONLY


def check_image_search(pipeline) -> None:
    """Raise a ValueError saying why this run cannot embed image files, if it cannot."""
    if not image_view_reads_files(pipeline.image_view):
        raise ValueError(
            f"the run ({pipeline.dataset_name}, {pipeline.method_name}) uses the image view "
            f"{pipeline.image_view!r}, which ships as precomputed features: it cannot embed an "
            "image file (eng-wiki ships SIFT features only). Search by image needs a run "
            "trained on a data set with image files, e.g. chinese-news."
        )
