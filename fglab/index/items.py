"""Item metadata of an index, held as columns (an Arrow table) rather than Python objects.

Rows are in ascending key order (keys are handed out in order and only appended), so a key's
row is a binary search; removed rows stay in the table, marked dead, until the next full save.
Counts per modality are kept up to date on every add and remove. Saved as Parquet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MODALITIES = ("image", "text")


@dataclass
class Item:
    """What an index knows about one item besides its vector."""

    id: str
    modality: str  # "image" or "text"
    pair_id: str  # the id of the pair (or manifest row) it comes from
    category: str | None = None
    title: str = ""
    text: str = ""  # the item's text, or the text paired with an image
    image_path: str | None = None  # relative to the index's collection root
    source: str = ""  # e.g. "eng-wiki:test" or "manifest:photos.csv"

    def snippet(self, length: int = 240) -> str:
        words = " ".join(self.text.split())
        return words if len(words) <= length else words[: length - 1].rstrip() + "\u2026"


ITEM_FIELDS = [f.name for f in fields(Item)]
SCHEMA = pa.schema([("key", pa.int64())] + [(name, pa.string()) for name in ITEM_FIELDS])


class ItemTable:
    """Keys, items and liveness of every row; see the module docstring."""

    def __init__(self, table: pa.Table | None = None):
        self.table = table if table is not None else SCHEMA.empty_table()
        self.keys = self.table.column("key").to_numpy().astype(np.int64, copy=False)
        if len(self.keys) > 1 and not (np.diff(self.keys) > 0).all():
            raise ValueError("item keys are not in ascending order")
        self.alive = np.ones(len(self.keys), dtype=bool)
        self.counts = self._count()  # once, in Arrow; then kept up to date by every change
        self._by_id: dict[str, int] | None = None  # id -> key of live items, built on first use

    def __len__(self) -> int:
        return sum(self.counts.values())

    def _count(self) -> dict[str, int]:
        """Live items per modality, counted in Arrow (at load; changes then keep them)."""
        modality = self.table.column("modality").filter(pa.array(self.alive))
        counts = pc.value_counts(modality).to_pylist()
        return {row["values"]: row["counts"] for row in counts}

    # -- changes ---------------------------------------------------------------------------

    def append(self, keys: np.ndarray, items: list[Item]) -> None:
        if len(keys) != len(items):
            raise ValueError(f"{len(keys)} keys for {len(items)} items")
        columns = {"key": pa.array(np.asarray(keys, np.int64))}  # column by column: a dict
        for name in ITEM_FIELDS:  # a row took ~1 KB, 1 GB for a million items
            columns[name] = pa.array([getattr(item, name) for item in items], pa.string())
        self.append_table(pa.table(columns, schema=SCHEMA))

    def append_table(self, part: pa.Table) -> None:
        """Append rows whose keys are all above the current ones."""
        keys = part.column("key").to_numpy().astype(np.int64, copy=False)
        if len(keys) and len(self.keys) and keys[0] <= self.keys[-1]:
            raise ValueError(f"item key {int(keys[0])} is not above {int(self.keys[-1])}")
        self.table = pa.concat_tables([self.table, part.cast(SCHEMA)])
        self.keys = np.concatenate([self.keys, keys])
        self.alive = np.concatenate([self.alive, np.ones(len(keys), dtype=bool)])
        for row in pc.value_counts(part.column("modality")).to_pylist():
            self.counts[row["values"]] = self.counts.get(row["values"], 0) + row["counts"]
        if self._by_id is not None:
            self._by_id.update(zip(part.column("id").to_pylist(), keys.tolist(), strict=True))

    def kill(self, keys: np.ndarray) -> None:
        """Mark the rows of ``keys`` (live ones) removed."""
        rows = self.rows_of(keys)
        if not len(rows):
            return
        picked = self._take(rows, ["id", "modality"]).to_pydict()
        for modality, item_id in zip(picked["modality"], picked["id"], strict=True):
            self.counts[modality] -= 1
            if self._by_id is not None:
                self._by_id.pop(item_id, None)
        self.alive[rows] = False

    # -- lookups ---------------------------------------------------------------------------

    def rows_of(self, keys: Iterable[int]) -> np.ndarray:
        """Row numbers of live ``keys``; KeyError for one that is absent or removed."""
        keys = np.asarray(list(keys) if not isinstance(keys, np.ndarray) else keys, np.int64)
        rows = np.searchsorted(self.keys, keys)
        found = rows < len(self.keys)
        found[found] = self.keys[rows[found]] == keys[found]
        found[found] = self.alive[rows[found]]
        if not found.all():
            raise KeyError(f"no item with key {int(keys[~found][0])} in the index")
        return rows

    def items_at(self, keys: Iterable[int]) -> list[Item]:
        rows = self.rows_of(keys)
        if not len(rows):
            return []
        return [Item(**record) for record in self._take(rows, ITEM_FIELDS).to_pylist()]

    def _take(self, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """A few rows, by one-row slices: ``Table.take`` would first join the table's chunks
        (one per segment), a copy of every row."""
        table = self.table.select(columns)
        return pa.concat_tables([table.slice(int(row), 1) for row in rows])

    def keys_of_ids(self, item_ids: list[str]) -> dict[str, int]:
        """{id: key} for those of ``item_ids`` that are live, without building the id map."""
        if self._by_id is not None:
            return {i: self._by_id[i] for i in item_ids if i in self._by_id}
        mask = pc.is_in(self.table.column("id"), value_set=pa.array(item_ids, pa.string()))
        rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False) & self.alive)
        ids = self._take(rows, ["id"]).column("id").to_pylist() if len(rows) else []
        return dict(zip(ids, self.keys[rows].tolist(), strict=True))

    @property
    def by_id(self) -> dict[str, int]:
        """id -> key of every live item (built once, then kept up to date)."""
        if self._by_id is None:
            live = pa.array(self.alive)
            ids = self.table.column("id").filter(live).to_pylist()
            self._by_id = dict(zip(ids, self.keys[self.alive].tolist(), strict=True))
        return self._by_id

    def live(self) -> pa.Table:
        """The live rows: the table itself where none was removed (a filter copies it all)."""
        return self.table if self.alive.all() else self.table.filter(pa.array(self.alive))

    def rows_from(self, start: int) -> pa.Table:
        return self.table.slice(start)

    def __iter__(self) -> Iterator[Item]:
        for batch in self.live().drop_columns(["key"]).to_batches():
            for record in batch.to_pylist():
                yield Item(**record)


#: Rows per Parquet row group: the writer encodes a group at a time (a million rows took about
#: 350 MB at once).
ROW_GROUP = 1 << 17


def write_items(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP)


def read_items(path: Path) -> pa.Table:
    table = pq.read_table(path)
    if table.schema.names != SCHEMA.names:
        raise ValueError(f"{path}: columns {table.schema.names}, expected {SCHEMA.names}")
    return table.cast(SCHEMA)


def read_items_jsonl(path: Path) -> pa.Table:
    """Items of a format-1 index (one JSON object per line, with its key)."""
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows.sort(key=lambda row: row["key"])
    return pa.Table.from_pylist(rows, schema=SCHEMA)
