"""Embedding a collection (a data set's split or a manifest) with a trained pipeline.

Data sets use :meth:`RetrievalPipeline.encode_split` (their shipped or extracted image
features); manifests go through the same feature views: raw text to ``encode_texts``, image
files to ``extract_image_features`` then ``encode_image_features``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.data.manifest import Manifest, load_manifest
from fglab.index.store import ITEM_ID, EmbeddingIndex, IndexSettings, Item

logger = logging.getLogger(__name__)

TEXT_BATCH = 256
IMAGE_BATCH = 64
#: ``extract_image_features(paths, view, cache_dir=None, progress=False)`` -> (rows, failures)
ImageFeaturizer = Callable[..., tuple[np.ndarray, dict[int, str]]]
#: ``image_features_of_bytes(data, view)`` -> (dim,) features of one image held in memory;
#: a ValueError says why it cannot be read.
UploadFeaturizer = Callable[[bytes, str], np.ndarray]
Progress = Callable[[int], None]


@dataclass
class EmbeddedItems:
    """Items of one modality with their embeddings, plus what was skipped and why."""

    items: list[Item]
    embeddings: np.ndarray
    skipped: list[str] = field(default_factory=list)


def default_image_featurizer() -> ImageFeaturizer:
    from fglab.features.image_views import extract_image_features

    return extract_image_features


def default_upload_featurizer() -> UploadFeaturizer:
    from fglab.features.image_views import image_features_of_bytes

    return image_features_of_bytes


def image_view_reads_files(view: str) -> bool:
    """Whether an image view is computed from image files (shipped SIFT features are not)."""
    return view not in ("image:sift",)


def check_image_search(pipeline) -> None:
    """Raise a ValueError saying why this pipeline cannot embed image files, if it cannot."""
    if not image_view_reads_files(pipeline.image_view):
        raise ValueError(
            f"the run ({pipeline.dataset_name}, {pipeline.method_name}) uses the image view "
            f"{pipeline.image_view!r}, which ships as precomputed features: it cannot embed an "
            "image file (eng-wiki ships SIFT features only). Search by image needs a run "
            "trained on a data set with image files, e.g. chinese-news."
        )


def embed_dataset(
    pipeline, dataset, split_names: Iterable[str], progress: Progress | None = None
) -> dict[str, EmbeddedItems]:
    """Image and text items of a data set's splits, embedded by ``pipeline.encode_split``."""
    out = {m: EmbeddedItems([], np.zeros((0, 1), np.float32)) for m in ("image", "text")}
    parts: dict[str, list[np.ndarray]] = {"image": [], "text": []}
    for split_name in split_names:
        split = dataset.split(split_name)
        image_emb, text_emb = pipeline.encode_split(split)
        source = f"{dataset.name}:{split_name}"
        for row in range(len(split)):
            pair = dataset_pair(dataset, split, row, source)
            for modality, item, emb in zip(
                ("image", "text"), pair, (image_emb, text_emb), strict=True
            ):
                if item is None:
                    out[modality].skipped.append(f"{source} row {row}: id is not usable")
                    continue
                out[modality].items.append(item)
                parts[modality].append(emb[row])
        if progress:
            progress(2 * len(split))
    for modality, rows in parts.items():
        out[modality].embeddings = np.vstack(rows) if rows else np.zeros((0, 1), np.float32)
    return out


def dataset_pair(dataset, split, row: int, source: str) -> tuple[Item | None, Item | None]:
    category = dataset.categories[int(split.labels[row])]
    path = split.image_paths[row]
    relative = Path(path).resolve().relative_to(dataset.path.resolve()).as_posix() if path else None
    common = {
        "category": category,
        "title": split.titles[row] or first_words(split.texts[row]),
        "text": split.texts[row],
        "image_path": relative,
        "source": source,
    }
    image_id, text_id = f"img-{split.image_ids[row]}", f"txt-{split.text_ids[row]}"
    image = (
        Item(image_id, "image", split.image_ids[row], **common) if ITEM_ID.match(image_id) else None
    )
    text = Item(text_id, "text", split.text_ids[row], **common) if ITEM_ID.match(text_id) else None
    return image, text


def embed_manifest(
    pipeline,
    manifest: Manifest,
    featurizer: ImageFeaturizer | None = None,
    progress: Progress | None = None,
) -> dict[str, EmbeddedItems]:
    """Text and image items of a manifest; images that fail feature extraction are skipped."""
    source = f"manifest:{manifest.path.name}"
    texts = [m for m in manifest.items if m.text]
    images = [m for m in manifest.items if m.image_path is not None]
    text_items = [manifest_item(m, "text", source, manifest.root) for m in texts]
    text_emb = _batched(
        lambda chunk: pipeline.encode_texts([m.text for m in chunk]), texts, TEXT_BATCH, progress
    )
    out = {"text": EmbeddedItems(text_items, text_emb)}
    out["image"] = _embed_manifest_images(
        pipeline, images, source, manifest.root, featurizer, progress
    )
    return out


def _embed_manifest_images(
    pipeline,
    rows,
    source: str,
    root: Path,
    featurizer: ImageFeaturizer | None,
    progress: Progress | None,
) -> EmbeddedItems:
    if not rows:
        return EmbeddedItems([], np.zeros((0, 1), np.float32))
    check_image_search(pipeline)
    featurizer = featurizer or default_image_featurizer()
    kept, parts, skipped = [], [], []
    for start in range(0, len(rows), IMAGE_BATCH):
        chunk = rows[start : start + IMAGE_BATCH]
        features, failures = featurizer([m.image_path for m in chunk], pipeline.image_view)
        good = [i for i in range(len(chunk)) if i not in failures]
        for i, reason in sorted(failures.items()):
            skipped.append(f"row {chunk[i].row} (id {chunk[i].id}): image unreadable ({reason})")
            logger.warning("%s: %s", source, skipped[-1])
        if good:
            parts.append(pipeline.encode_image_features(np.asarray(features)[good]))
            kept += [manifest_item(chunk[i], "image", source, root) for i in good]
        if progress:
            progress(len(chunk))
    embeddings = np.vstack(parts) if parts else np.zeros((0, 1), np.float32)
    return EmbeddedItems(kept, embeddings, skipped)


def first_words(text: str, length: int = 40) -> str:
    """A title for an untitled text: its first words (or characters, for Chinese)."""
    words = " ".join(text.split())
    return words if len(words) <= length else words[:length].rstrip() + "\u2026"


def manifest_item(row, modality: str, source: str, root: Path) -> Item:
    prefix = "img-" if modality == "image" else "txt-"
    text = row.text or ""
    image = row.image_path.relative_to(root).as_posix() if row.image_path else None
    title = first_words(text) if text else (row.image_path.name if row.image_path else "")
    return Item(f"{prefix}{row.id}", modality, row.id, row.label, title, text, image, source)


def _batched(encode, rows: list, size: int, progress: Progress | None) -> np.ndarray:
    parts = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        parts.append(np.asarray(encode(chunk)))
        if progress:
            progress(len(chunk))
    return np.vstack(parts) if parts else np.zeros((0, 1), np.float32)


def load_collection(spec: str, data_root=None):
    """``manifest:PATH`` -> a :class:`Manifest`; a data set name -> a loaded data set."""
    if spec.startswith("manifest:"):
        return load_manifest(spec)
    from fglab.data.wikipedia import load_dataset

    return load_dataset(spec, data_root)


def collection_size(collection, split_names: Iterable[str]) -> int:
    """How many progress units embedding the collection takes (items of both modalities)."""
    if isinstance(collection, Manifest):
        return sum(bool(m.text) + (m.image_path is not None) for m in collection.items)
    return sum(2 * len(collection.split(s)) for s in split_names)


def build_index(
    pipeline,
    collection,
    split_names: Iterable[str] = ("test",),
    settings: IndexSettings | None = None,
    featurizer: ImageFeaturizer | None = None,
    progress: Progress | None = None,
    index: EmbeddingIndex | None = None,
) -> tuple[EmbeddingIndex, list[str]]:
    """Embed a collection and add it to ``index`` (a new one by default).

    Returns the index and the skipped items' descriptions.
    """
    split_names = list(split_names)
    if isinstance(collection, Manifest):
        embedded = embed_manifest(pipeline, collection, featurizer, progress)
        root, name = collection.root, f"manifest:{collection.path.name}"
        skipped = [str(p) for p in collection.problems]
    else:
        embedded = embed_dataset(pipeline, collection, split_names, progress)
        root, name, skipped = collection.path, collection.name, []
    dims = {e.embeddings.shape[1] for e in embedded.values() if e.items}
    if not dims:
        raise ValueError(f"{name}: nothing to index")
    if index is None:
        info = {
            "collection": name,
            "collection_root": str(Path(root).resolve()),
            "splits": split_names if not isinstance(collection, Manifest) else [],
            "dataset": pipeline.dataset_name,
            "method": pipeline.method_name,
            "categories": list(pipeline.categories),
        }
        index = EmbeddingIndex(dims.pop(), settings, info)
    elif str(Path(root).resolve()) != index.info.get("collection_root"):
        raise ValueError(
            f"{name} lies under {Path(root).resolve()}, the index's collection under "
            f"{index.info.get('collection_root')}; items must come from the same folder"
        )
    for part in embedded.values():
        index.add(part.items, part.embeddings)
        skipped += part.skipped
    return index, skipped
