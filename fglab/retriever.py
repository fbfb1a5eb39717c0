"""Search a built index with a trained pipeline: text or image queries in, ranked hits out.

:class:`Retriever` owns every check on what a caller sends (query text, ``k``, uploaded
image bytes, item ids), so the CLI and the HTTP service stay thin. Its errors are
:class:`SearchError` subclasses carrying a short machine-readable ``code``.
"""

from __future__ import annotations

import contextlib
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
from fglab.index.watch import IndexWatcher

logger = logging.getLogger(__name__)

#: Characters that show nothing but are not whitespace to ``str.isspace`` (zero-width space,
#: non-joiner and joiner, word joiner, byte order mark): a query of only these is empty too.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
#: What a search response says when the model read nothing of the query.
NOTHING_KNOWN = ("none of the query's words is known to the model, so these results do not "
                 "depend on it; try other words")


def is_blank(text: str) -> bool:
    """Whether a query holds nothing but whitespace and invisible characters."""
    return all(c.isspace() or c in INVISIBLE for c in text)


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


class ShardUnavailableError(UnavailableError):
    """A shard of a served index has no replica that answers: an outage worth retrying."""

    code = "shard_unavailable"


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


@dataclass(frozen=True, eq=False)
class Served:
    """What a query runs against: the model, the index and the collection's folder. Replaced
    whole when the index changes on disk; a query reads it once (old state or new, no mix)."""

    pipeline: object
    index: EmbeddingIndex
    root: Path

    @classmethod
    def of(cls, pipeline, index: EmbeddingIndex) -> Served:
        return cls(pipeline, index, Path(index.info.get("collection_root", ".")).resolve())


class Retriever:
    """A pipeline plus an index; ``search_text`` and ``search_image`` return :class:`Hit` lists."""

    def __init__(
        self,
        pipeline,
        index: EmbeddingIndex,
        limits: Limits | None = None,
        featurizer: UploadFeaturizer | None = None,
    ):
        self.served = Served.of(pipeline, index)
        self.limits = limits or Limits()
        self._featurizer = featurizer  # image bytes -> features; default EfficientNet in memory
        # Pipelines are not promised to be thread-safe: one lock around their (fast) encoders,
        # another around the (slow) image model, so text queries never wait behind a CNN.
        self._lock = threading.Lock()
        self._image_lock = threading.Lock()
        self.threads: int | None = None  # threads per query; None leaves the libraries' default
        # keyed by the served state too: a thumbnail of a removed item is never served again
        self._thumbnails = lru_cache(maxsize=512)(self._thumbnail)
        self.index_dir: Path | None = None  # where :meth:`reload` reads (set by :meth:`open`)
        self._load_pipeline: Callable[[Path], object] | None = None
        self._watcher: IndexWatcher | None = None
        self._nprobe: int | None = None

    @property
    def pipeline(self):
        return self.served.pipeline

    @property
    def index(self) -> EmbeddingIndex:
        return self.served.index

    @classmethod
    def open(
        cls, index_dir: Path, load_pipeline: Callable[[Path], object] | None = None, **kwargs
    ) -> Retriever:
        """Load an index directory and the model saved inside it (``INDEX/model``)."""
        index = EmbeddingIndex.load(index_dir)
        if load_pipeline is None:
            from fglab.pipeline import RetrievalPipeline

            load_pipeline = RetrievalPipeline.load
        retriever = cls(load_pipeline(Path(index_dir) / MODEL_DIR), index, **kwargs)
        retriever.index_dir, retriever._load_pipeline = Path(index_dir), load_pipeline
        return retriever

    # -- following the index on disk -----------------------------------------------------

    def reload(self) -> None:
        """Load the index directory again (and its model, if that changed) and serve it from
        the next query on; queries in flight finish on the state they started with."""
        if self.index_dir is None or self._load_pipeline is None:
            raise RuntimeError("only a retriever opened from a directory can reload it")
        index = EmbeddingIndex.load(self.index_dir)
        pipeline = self.pipeline
        if _model_files(index) != _model_files(self.index):
            pipeline = self._load_pipeline(self.index_dir / MODEL_DIR)
        if self._nprobe is not None:
            _apply_nprobe(index, self._nprobe)
        self.served = Served.of(pipeline, index)
        self._thumbnails.cache_clear()  # drops the old state's images (keys differ anyway)
        logger.info("reloaded %s: %s", self.index_dir, _counts(index))

    def watch(self, interval_s: float = 2.0) -> None:
        """Check the index directory every ``interval_s`` seconds and :meth:`reload` it when
        ``fglab index-add`` / ``index-remove`` committed or ``fglab index`` rewrote it."""
        if self.index_dir is None:
            raise RuntimeError("only a retriever opened from a directory can watch it")
        self.stop_watching()
        self._watcher = IndexWatcher(self.index_dir, self.reload, interval_s).start()

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

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

    def set_nprobe(self, nprobe: int) -> None:
        """Scan ``nprobe`` inverted lists per query in ivfpq indexes (instead of the tuned
        value); a ValueError below 1."""
        if nprobe < 1:
            raise ValueError(f"--nprobe must be at least 1, got {nprobe}")
        self._nprobe = nprobe  # applied again to every reloaded index
        _apply_nprobe(self.index, nprobe)

    # -- queries -------------------------------------------------------------------------

    def search_text(self, query: str, k: int = 10, target: str = "image") -> list[Hit]:
        """The ``k`` items of ``target`` modality that best match a text query."""
        served = self.served
        k, target = self.check_k(k), self.check_target(target, served)
        if not isinstance(query, str):
            raise InvalidQueryError(f"query must be a string, got {type(query).__name__}")
        if len(query) > self.limits.max_query_chars:
            raise QueryTooLargeError(
                f"query has {len(query)} characters; at most {self.limits.max_query_chars}"
            )
        if is_blank(query):
            raise InvalidQueryError("query is empty; type a few words")
        with self._lock:
            try:
                vector = np.asarray(served.pipeline.encode_texts([query.strip()]))
            except ValueError as error:
                raise UnavailableError(f"text search is not available: {error}") from error
        return self._hits(served, vector, target, k)

    def search_image(
        self, image: bytes | str | Path, k: int = 10, target: str = "text"
    ) -> list[Hit]:
        """The ``k`` items of ``target`` modality that best match an image (bytes or a path)."""
        served = self.served
        k, target = self.check_k(k), self.check_target(target, served)
        data = self._image_bytes(image)
        self.check_image(data)
        try:
            check_image_search(served.pipeline)
        except ValueError as error:
            raise UnavailableError(str(error)) from error
        featurizer = self._featurizer or default_upload_featurizer()
        with self._image_lock:
            try:  # decoded from memory and run on the loaded model: no file, no DataLoader
                features = np.asarray(featurizer(data, served.pipeline.image_view))
            except ValueError as error:
                raise UnreadableImageError(f"the image could not be read: {error}") from error
        with self._lock:
            vector = np.asarray(served.pipeline.encode_image_features(features[None]))
        return self._hits(served, vector, target, k)

    def _hits(self, served: Served, vector: np.ndarray, target: str, k: int) -> list[Hit]:
        if self.threads is not None:
            set_search_threads(self.threads)  # an OpenMP setting of the thread that searches
        results = served.index.search(vector, target, k)[0]
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
                self._image_file(served, item) is not None,
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

    def check_target(self, target: str, served: Served | None = None) -> str:
        if target not in MODALITIES:
            raise InvalidQueryError(f"target must be 'image' or 'text', got {target!r}")
        if (served or self.served).index.count(target) == 0:
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
        return self._item(self.served, item_id)

    def _item(self, served: Served, item_id: str) -> Item:
        if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
            raise InvalidQueryError(f"item id {item_id!r} is not a valid id")
        try:
            return served.index.get(item_id)
        except KeyError as error:
            raise ItemNotFoundError(f"no item with id {item_id!r}") from error

    def image_file(self, item: Item) -> Path | None:
        """The item's image file if it exists inside the collection folder; never outside."""
        return self._image_file(self.served, item)

    @staticmethod
    def _image_file(served: Served, item: Item) -> Path | None:
        if not item.image_path:
            return None
        path = (served.root / item.image_path).resolve()
        if not path.is_relative_to(served.root) or not path.is_file():
            return None
        return path

    def thumbnail(self, item_id: str) -> bytes:
        """A JPEG of at most ``thumbnail_size`` pixels a side of the item's image."""
        return self._thumbnails(self.served, item_id)

    def _thumbnail(self, served: Served, item_id: str) -> bytes:
        item = self._item(served, item_id)
        path = self._image_file(served, item)
        if path is None:
            source = served.index.info.get("collection", "this collection")
            raise ItemNotFoundError(f"item {item_id!r} has no image file in {source}")
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

    def query_note(self, query: str) -> str | None:
        """A note for the response when the model reads nothing of ``query`` (no word of it in
        the vocabulary and no sentence embedding): its results are the same for any such
        query. None when the query counts, or the model cannot tell."""
        ignores = getattr(self.served.pipeline, "ignores_text", None)
        return NOTHING_KNOWN if ignores is not None and ignores(query.strip()) else None

    def warm_up(self) -> None:
        """Before serving: have the OS cache the vectors a query reads from disk where they fit
        half the available memory (:meth:`EmbeddingIndex.prefetch`), and run one text query
        (and one image query where the run embeds images), so that what loads on first use
        (jieba's dictionary, the image model) does not slow the first user's query."""
        served = self.served
        cached = served.index.prefetch()
        if cached:
            logger.info("read the %s vectors into the OS cache", " and ".join(cached))
        target = "image" if served.index.count("image") else "text"
        with contextlib.suppress(SearchError):
            self.search_text("warm up", 1, target)
        if served.index.count("text") == 0 or not self._image_search_available():
            return
        image = io.BytesIO()
        Image.new("RGB", (32, 32), (128, 128, 128)).save(image, format="PNG")
        with contextlib.suppress(SearchError):
            self.search_image(image.getvalue(), 1, "text")

    def health(self) -> dict:
        served = self.served
        return {
            "status": "ok",
            "items": {m: served.index.count(m) for m in MODALITIES},
            "collection": served.index.info.get("collection"),
            "dataset": getattr(served.pipeline, "dataset_name", None),
            "method": getattr(served.pipeline, "method_name", None),
            "image_search": self._image_search_available(),
            "limits": asdict(self.limits),
        }

    def _image_search_available(self) -> bool:
        try:
            check_image_search(self.pipeline)
        except ValueError:
            return False
        return self.index.count("text") > 0


def _model_files(index: EmbeddingIndex) -> dict:
    """The listed files of an index's model (what decides whether to load it again)."""
    listing = index.origin.listing if index.origin else {}
    return {n: e for n, e in listing.get("files", {}).items() if n.startswith(f"{MODEL_DIR}/")}


def _counts(index: EmbeddingIndex) -> str:
    return ", ".join(f"{index.count(m)} {m}s" for m in MODALITIES)


def _apply_nprobe(index: EmbeddingIndex, nprobe: int) -> None:
    for modality in index.modalities.values():
        if modality.kind == "ivfpq":
            modality.faiss_index.nprobe = nprobe
