"""Search a built index with a trained pipeline: text or image queries in, ranked hits out.

:class:`Retriever` owns every check on what a caller sends (query text, ``k``, uploaded
image bytes, item ids), so the CLI and the HTTP service stay thin. Its errors are
:class:`SearchError` subclasses carrying a short machine-readable ``code``.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fglab.features.image_files import (
    UploadFeaturizer,
    check_image_search,
    default_upload_featurizer,
)
from fglab.index.atomic import MODEL_DIR
from fglab.index.store import ITEM_ID, MODALITIES, EmbeddingIndex, Item
from fglab.index.vectors import set_search_threads

logger = logging.getLogger(__name__)


class SearchError(ValueError):
    """A request the retriever refuses; ``code`` names the kind of problem."""

    code = "bad_request"


class InvalidQueryError(SearchError):
    code = "invalid_query"


class QueryTooLargeError(SearchError):
    code = "too_large"


class NotAnImageError(SearchError):
    code = "not_an_image"


class UnreadableImageError(SearchError):
    code = "unreadable_image"


class UnavailableError(SearchError):
    code = "unavailable"


class ItemNotFoundError(SearchError):
    code = "not_found"


@dataclass(frozen=True)
class Limits:
    """What a query may be."""

    max_k: int = 100
    max_query_chars: int = 2_000
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    thumbnail_size: int = 320


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    rank: int
    id: str
    modality: str
    score: float
    category: str | None
    title: str
    snippet: str
    pair_id: str
    has_image: bool

    def to_dict(self) -> dict:
        return asdict(self)


class Retriever:
    """A pipeline plus an index; ``search_text`` and ``search_image`` return :class:`Hit` lists."""

    def __init__(
        self,
        pipeline,
        index: EmbeddingIndex,
        limits: Limits | None = None,
        featurizer: UploadFeaturizer | None = None,
    ):
        self.pipeline = pipeline
        self.index = index
        self.limits = limits or Limits()
        self._featurizer = featurizer  # image bytes -> features; default EfficientNet in memory
        # Pipelines are not promised to be thread-safe: one lock around their (fast) encoders,
        # another around the (slow) image model, so text queries never wait behind a CNN.
        self._lock = threading.Lock()
        self._image_lock = threading.Lock()
        self.threads: int | None = None  # threads per query; None leaves the libraries' default
        self._root = Path(index.info.get("collection_root", ".")).resolve()
        self.thumbnail = lru_cache(maxsize=512)(self._thumbnail)

    @classmethod
    def open(
        cls, index_dir: Path, load_pipeline: Callable[[Path], object] | None = None, **kwargs
    ) -> Retriever:
        """Load an index directory and the model saved inside it (``INDEX/model``)."""
        index = EmbeddingIndex.load(index_dir)
        if load_pipeline is None:
            from fglab.pipeline import RetrievalPipeline

            load_pipeline = RetrievalPipeline.load
        return cls(load_pipeline(Path(index_dir) / MODEL_DIR), index, **kwargs)

    def limit_threads(self, threads: int = 1) -> None:
        """Let faiss and torch use ``threads`` threads per query.

        On a shared CPU an OpenMP pool of two or more threads per query waits for its slowest
        thread at every step: on this project's 2-core machine with another job running, a
        20k-vector faiss search took 24 ms with 2 threads and 0.4 ms with 1, an EfficientNet
        image query 1.4 s against 11 ms. A server answers queries side by side instead.
        torch's setting is process-wide (and torch is imported only if the pipeline embeds
        image files); faiss's is per calling thread, so each query sets it (:meth:`_hits`).
        """
        self.threads = threads
        try:
            check_image_search(self.pipeline)
        except ValueError:
            return
        import torch

        torch.set_num_threads(threads)

    # -- queries -------------------------------------------------------------------------

    def search_text(self, query: str, k: int = 10, target: str = "image") -> list[Hit]:
        """The ``k`` items of ``target`` modality that best match a text query."""
        k, target = self.check_k(k), self.check_target(target)
        if not isinstance(query, str):
            raise InvalidQueryError(f"query must be a string, got {type(query).__name__}")
        if len(query) > self.limits.max_query_chars:
            raise QueryTooLargeError(
                f"query has {len(query)} characters; at most {self.limits.max_query_chars}"
            )
        if not query.strip():
            raise InvalidQueryError("query is empty; type a few words")
        with self._lock:
            try:
                vector = np.asarray(self.pipeline.encode_texts([query.strip()]))
            except ValueError as error:
                raise UnavailableError(f"text search is not available: {error}") from error
        return self._hits(vector, target, k)

    def search_image(
        self, image: bytes | str | Path, k: int = 10, target: str = "text"
    ) -> list[Hit]:
        """The ``k`` items of ``target`` modality that best match an image (bytes or a path)."""
        k, target = self.check_k(k), self.check_target(target)
        data = self._image_bytes(image)
        self.check_image(data)
        try:
            check_image_search(self.pipeline)
        except ValueError as error:
            raise UnavailableError(str(error)) from error
        featurizer = self._featurizer or default_upload_featurizer()
        with self._image_lock:
            try:  # decoded from memory and run on the loaded model: no file, no DataLoader
                features = np.asarray(featurizer(data, self.pipeline.image_view))
            except ValueError as error:
                raise UnreadableImageError(f"the image could not be read: {error}") from error
        with self._lock:
            vector = np.asarray(self.pipeline.encode_image_features(features[None]))
        return self._hits(vector, target, k)

    def _hits(self, vector: np.ndarray, target: str, k: int) -> list[Hit]:
        if self.threads is not None:
            set_search_threads(self.threads)  # an OpenMP setting of the thread that searches
        results = self.index.search(vector, target, k)[0]
        return [
            Hit(
                rank,
                item.id,
                item.modality,
                score,
                item.category,
                item.title,
                item.snippet(),
                item.pair_id,
                self.image_file(item) is not None,
            )
            for rank, (item, score) in enumerate(results, start=1)
        ]

    # -- validation ----------------------------------------------------------------------

    def check_k(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidQueryError(f"k must be an integer, got {k!r}")
        if not 1 <= k <= self.limits.max_k:
            raise InvalidQueryError(f"k must be between 1 and {self.limits.max_k}, got {k}")
        return int(k)

    def check_target(self, target: str) -> str:
        if target not in MODALITIES:
            raise InvalidQueryError(f"target must be 'image' or 'text', got {target!r}")
        if self.index.count(target) == 0:
            raise UnavailableError(f"the index holds no {target} items")
        return target

    def _image_bytes(self, image: bytes | str | Path) -> bytes:
        if isinstance(image, bytes | bytearray):
            return bytes(image)
        path = Path(image)
        if not path.is_file():
            raise InvalidQueryError(f"image {path} not found")
        if path.stat().st_size > self.limits.max_image_bytes:
            raise QueryTooLargeError(self._bytes_message(path.stat().st_size))
        return path.read_bytes()

    def _bytes_message(self, size: int) -> str:
        return f"image has {size} bytes; at most {self.limits.max_image_bytes} accepted"

    def check_image(self, data: bytes) -> str:
        """The image's format if ``data`` is a whole, reasonably sized image; else an error."""
        if not data:
            raise InvalidQueryError("the upload is empty; send an image file")
        if len(data) > self.limits.max_image_bytes:
            raise QueryTooLargeError(self._bytes_message(len(data)))
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    self._check_pixels(image.size)
                    image.load()  # decodes everything: truncated files fail here
                    return image.format or "png"
            except QueryTooLargeError:
                raise  # from the pixel check: a ValueError, but not a damaged file
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
                raise QueryTooLargeError(f"image is too large to decode: {error}") from error
            except UnidentifiedImageError as error:
                raise NotAnImageError(
                    "the upload is not an image Pillow can read (send JPEG, PNG, GIF, BMP or WebP)"
                ) from error
            except (OSError, SyntaxError, ValueError) as error:
                raise UnreadableImageError(f"the image is truncated or damaged: {error}") from error

    def _check_pixels(self, size: tuple[int, int]) -> None:
        width, height = size
        if width * height > self.limits.max_image_pixels:
            raise QueryTooLargeError(
                f"image is {width} x {height} pixels; at most {self.limits.max_image_pixels} "
                "pixels accepted"
            )

    # -- items ---------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
            raise InvalidQueryError(f"item id {item_id!r} is not a valid id")
        try:
            return self.index.get(item_id)
        except KeyError as error:
            raise ItemNotFoundError(f"no item with id {item_id!r}") from error

    def image_file(self, item: Item) -> Path | None:
        """The item's image file if it exists inside the collection folder; never outside."""
        if not item.image_path:
            return None
        path = (self._root / item.image_path).resolve()
        if not path.is_relative_to(self._root) or not path.is_file():
            return None
        return path

    def _thumbnail(self, item_id: str) -> bytes:
        """A JPEG of at most ``thumbnail_size`` pixels a side of the item's image."""
        item = self.item(item_id)
        path = self.image_file(item)
        if path is None:
            source = self.index.info.get("collection", "this collection")
            raise ItemNotFoundError(
                f"item {item_id!r} has no image file in {source} (eng-wiki ships SIFT features "
                "only, no images)"
            )
        size = self.limits.thumbnail_size
        try:
            with Image.open(path) as image:
                self._check_pixels(image.size)
                image.draft("RGB", (size, size))
                image = ImageOps.exif_transpose(image).convert("RGB")
                image.thumbnail((size, size))
                out = io.BytesIO()
                image.save(out, format="JPEG", quality=85)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise UnreadableImageError(f"item {item_id!r}: image unreadable ({error})") from error
        return out.getvalue()

    def health(self) -> dict:
        return {
            "status": "ok",
            "items": {m: self.index.count(m) for m in MODALITIES},
            "collection": self.index.info.get("collection"),
            "dataset": getattr(self.pipeline, "dataset_name", None),
            "method": getattr(self.pipeline, "method_name", None),
            "image_search": self._image_search_available(),
            "limits": asdict(self.limits),
        }

    def _image_search_available(self) -> bool:
        try:
            check_image_search(self.pipeline)
        except ValueError:
            return False
        return self.index.count("text") > 0
