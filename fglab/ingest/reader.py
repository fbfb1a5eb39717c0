"""The reader: a collection (a data set's splits or a manifest) as rows to embed.

A :class:`Row` is one item with its input: raw text, an image file, or precomputed image or
text features (a data set's shipped view). Rows come in the order keys are handed out: a data
set's images then its texts, a manifest's texts then its images.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.data.manifest import Manifest, StreamedManifest
from fglab.data.problems import printable
from fglab.features.image_files import check_image_search
from fglab.index.store import ITEM_ID, Item

#: Row kinds: what the input is.
KINDS = ("text", "image-file", "image-features", "text-features")
#: A manifest read whole or streamed: either gives its items (:meth:`iter_items`) and counts.
MANIFESTS = (Manifest, StreamedManifest)


@dataclass
class Row:
    """One item to embed: ``value`` holds the text or the image file's path, ``features`` a
    shipped view's values; a failed image is skipped (``skip_failed``) or embedded from zero
    features, as the collection's kind asks; ``where`` names it in messages."""

    item: Item
    kind: str
    value: str = ""
    features: list[float] = field(default_factory=list)
    skip_failed: bool = False
    where: str = ""

    def wire(self, number: int) -> dict:
        """The row as plain values any engine can carry (see :mod:`fglab.ingest.embedder`)."""
        return {"row": number, "kind": self.kind, "value": self.value, "features": self.features}


def collection_name(collection) -> str:
    return f"manifest:{collection.path.name}" if isinstance(collection, MANIFESTS) \
        else collection.name


def collection_root(collection) -> Path:
    """The folder the collection's files lie under, resolved."""
    return Path(collection.root if isinstance(collection, MANIFESTS) else collection.path).resolve()


def collection_splits(collection, split_names: Iterable[str]) -> list[str]:
    """The splits an index of the collection holds (a manifest has none)."""
    return [] if isinstance(collection, MANIFESTS) else list(split_names)


def collection_size(collection, split_names: Iterable[str]) -> int:
    """How many progress units embedding the collection takes (items of both modalities)."""
    return sum(collection_counts(collection, split_names).values())


def collection_counts(collection, split_names: Iterable[str]) -> dict[str, int]:
    """Items per modality the collection gives (before any fails to embed)."""
    if isinstance(collection, MANIFESTS):
        return dict(collection.counts)
    pairs = sum(len(collection.split(s)) for s in split_names)
    return {"image": pairs, "text": pairs}


def read_rows(pipeline, collection, split_names: Iterable[str]) -> tuple[list[Row], list[str]]:
    """The collection's rows for ``pipeline`` and its problems (rows that cannot be items)."""
    blocks, problems = row_blocks(pipeline, collection, split_names)
    return [row for block in blocks for row in block], problems


def row_blocks(pipeline, collection, split_names: Iterable[str], size: int = 1 << 18
               ) -> tuple[Iterator[list[Row]], list[str]]:
    """The collection's rows for ``pipeline`` in blocks of at most ``size``, and its problems.
    A manifest's rows are made as the blocks are taken (a streamed manifest's never all
    held), its texts then its images."""
    if isinstance(collection, MANIFESTS):
        if collection.counts.get("image"):
            check_image_search(pipeline)
        rows = _manifest_rows(collection)
        problems = [str(p) for p in collection.problems]
    else:
        listed, problems = _dataset_rows(pipeline, collection, list(split_names))
        rows = iter(listed)
    return iter(lambda: list(itertools.islice(rows, size)), []), problems


def _manifest_rows(manifest: Manifest | StreamedManifest) -> Iterator[Row]:
    source, root = collection_name(manifest), manifest.root
    for m in manifest.iter_items("text"):
        yield Row(manifest_item(m, "text", source, root), "text", m.text)
    for m in manifest.iter_items("image"):
        yield Row(manifest_item(m, "image", source, root), "image-file", str(m.image_path),
                  skip_failed=True, where=f"row {m.row} (id {printable(m.id)})")


def _dataset_rows(pipeline, dataset, split_names: list[str]) -> tuple[list[Row], list[str]]:
    images, texts, skipped = [], [], []
    for split_name in split_names:
        split = dataset.split(split_name)
        source = f"{dataset.name}:{split_name}"
        shipped_image = split.shipped.get(pipeline.image_view)
        shipped_text = split.shipped.get(pipeline.text_view) \
            if pipeline.text_features is None else None
        for row in range(len(split)):
            image, text = dataset_pair(dataset, split, row, source)
            shown = printable(source, None)
            skipped += [f"{shown} row {row}: id is not usable" for i in (image, text) if i is None]
            where = f"{shown} image {printable(split.image_ids[row])}"
            if image is not None and shipped_image is not None:
                images.append(Row(image, "image-features", features=_dense(shipped_image, row)))
            elif image is not None:
                path = split.image_paths[row]
                images.append(Row(image, "image-file", str(path) if path else "", where=where))
            if text is not None and shipped_text is not None:
                texts.append(Row(text, "text-features", features=_dense(shipped_text, row)))
            elif text is not None:
                texts.append(Row(text, "text", split.texts[row]))
    return images + texts, skipped


def _dense(matrix, row: int) -> list[float]:
    values = matrix[row]
    values = values.toarray()[0] if hasattr(values, "toarray") else np.asarray(values)
    return np.asarray(values, dtype=np.float64).ravel().tolist()


def dataset_pair(dataset, split, row: int, source: str) -> tuple[Item | None, Item | None]:
    """The image and text items of a data set's row (None where its id is not usable)."""
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
