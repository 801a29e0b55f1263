"""The records passed between stages, each declared once.

- `FileRecord`: one image file, as the shard stage writes it (JSON lines) and as the
  `files` table publishes it. Each field says which stage produces it, its duckdb type
  (when the aggregation reads it from the shard records) and its SQLite type (when it
  is a column of `files`); the field order is the column order.
- `thumb_path` / `thumb_relpath`: where a content's thumbnail lives.

Adding a column is one field here plus the line of the stage that fills it; the
schema, the duckdb read, the shard record keys and the review pages follow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Stages that produce a FileRecord field.
SHARD = "shard"  # the file's name, stat facts and sha256 (rule decode_shard)
DECODE = "decode"  # facts decoded from the bytes: cached by sha256 (decode.analyse)
AGGREGATE = "aggregate"  # computed when the tables are built (rule aggregate)

# Results subdirectory of the content store; the `thumb` column is relative to results.
THUMB_DIR = "thumbs"


def thumb_path(store: str | os.PathLike, sha: str) -> Path:
    """Thumbnail of a file content in the content store (shared by byte copies).

    Stores are split by the hash's first two hex digits, so no directory holds more
    than a few thousand files even for a large archive.
    """
    return Path(store) / sha[:2] / f"{sha}.jpg"


def thumb_relpath(sha: str) -> str:
    """`thumb_path` relative to the results directory, with `/`: the `files.thumb`
    column and the pages' image links."""
    return thumb_path(THUMB_DIR, sha).as_posix()


def _col(
    stage: str,
    duck: str | None = None,
    sql: str | None = None,
    *,
    select: str | None = None,
    name: str | None = None,
    to_sql: Callable[[Any], Any] | None = None,
    default: Any = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A record field with its producer and its column types.

    `duck`: type when read from JSON by duckdb (None: not read); `sql`: SQLite type
    of the table column (None: not a column); `select`: the aggregation's SQL for the
    column (default: the field itself); `name`: column name when it differs from the
    field; `to_sql`: conversion of the value for the table.
    """
    meta = {"stage": stage, "duck": duck, "sql": sql, "select": select, "name": name}
    return field(default=default, metadata={**meta, "to_sql": to_sql})


@dataclass(slots=True)
class FileRecord:
    """One image file: its name and stat facts, what decoding its bytes found, and the
    columns the aggregation adds. Every field defaults to None: stages fill it in."""

    file_id: int | None = _col(AGGREGATE, sql="INTEGER PRIMARY KEY")
    filename: str | None = _col(SHARD, "VARCHAR", "TEXT NOT NULL")
    size_bytes: int | None = _col(SHARD, "BIGINT", "INTEGER")
    sha256: str | None = _col(SHARD, "VARCHAR", "TEXT")
    # the content's format as libvips reads it, whatever the extension says
    format: str | None = _col(DECODE, "VARCHAR", "TEXT")
    width: int | None = _col(DECODE, "INTEGER", "INTEGER")
    height: int | None = _col(DECODE, "INTEGER", "INTEGER")
    n_pages: int | None = _col(DECODE, "INTEGER", "INTEGER")
    bits_per_sample: int | None = _col(DECODE, "INTEGER", "INTEGER")
    bands: int | None = _col(DECODE, "INTEGER", "INTEGER")
    status: str | None = _col(DECODE, "VARCHAR", "TEXT NOT NULL")  # 'ok' or 'error'
    error: str | None = _col(DECODE, "VARCHAR", "TEXT")  # the reason of an error
    interpretation: str | None = _col(DECODE, "VARCHAR", "TEXT")
    # hash of the decoded page-0 raster: equal exactly when the pixels are equal
    pixel_hash: str | None = _col(DECODE, "VARCHAR", "TEXT")
    mtime_ns: int | None = _col(SHARD, "BIGINT", "INTEGER")
    thumb: str | None = _col(
        AGGREGATE, sql="TEXT", select="CASE WHEN status = 'ok' THEN thumb_relpath(sha256) END"
    )
    thumb_w: int | None = _col(DECODE, "INTEGER", "INTEGER")
    thumb_h: int | None = _col(DECODE, "INTEGER", "INTEGER")
    # the name's raw bytes (hex): lossless where `filename` escapes non-UTF-8 bytes
    filename_bytes: str | None = _col(SHARD, "VARCHAR", "TEXT NOT NULL")
    # EXIF/TIFF Orientation tag (1-8), NULL when absent; pixels are matched raw
    exif_orientation: int | None = _col(DECODE, "INTEGER", "INTEGER")
    ctime_ns: int | None = _col(SHARD, "BIGINT", "INTEGER")
    inode: int | None = _col(SHARD, "UBIGINT", "INTEGER")
    # 1 for plain or near-plain images (blank pages, grey cards): never matched
    blank: bool | None = _col(DECODE, "BOOLEAN", "INTEGER", select="CAST(blank AS INTEGER)")
    # Not columns of `files`:
    path: str | None = _col(SHARD, "VARCHAR")  # display name, the key of reruns
    params: str | None = _col(SHARD)  # fingerprint of the decode settings
    phash: list[str] | None = _col(DECODE)  # pHash of each of the 8 orientations

    def set_facts(self, facts: Mapping[str, Any]) -> None:
        """Take the decode facts (missing ones as None) from a decode or cache record."""
        for key in DECODE_KEYS:
            setattr(self, key, facts.get(key))

    def facts(self) -> dict[str, Any]:
        """The decode facts alone: what the content store caches per sha256."""
        return {key: getattr(self, key) for key in DECODE_KEYS}

    def shard_dict(self) -> dict[str, Any]:
        """The record as the shard stage writes it (without the aggregation's columns)."""
        return {key: getattr(self, key) for key in SHARD_KEYS}


def _keys(cls: type, *stages: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.metadata["stage"] in stages)


def _table(cls: type) -> list[tuple[str, str]]:
    """(column, SQLite type) of the fields that are table columns, in field order."""
    return [
        (f.metadata["name"] or f.name, f.metadata["sql"])
        for f in fields(cls)
        if f.metadata["sql"] is not None
    ]


# Keys decode.analyse fills and the content store caches.
DECODE_KEYS = _keys(FileRecord, DECODE)
# Keys of a shard record (JSON lines of rule decode_shard).
SHARD_KEYS = _keys(FileRecord, SHARD, DECODE)
# Shard record fields the aggregation reads, with their duckdb types.
RECORD_COLUMNS = {
    f.name: f.metadata["duck"] for f in fields(FileRecord) if f.metadata["duck"] is not None
}
FILES_COLUMNS = _table(FileRecord)
# The aggregation's SELECT list for `files` (from its table of records), in column order.
FILES_SELECT = [
    f"{f.metadata['select'] or f.name} AS {f.name}"
    for f in fields(FileRecord)
    if f.metadata["sql"] is not None
]
