"""The records passed between stages, each declared once.

- `FileRecord`: one image file, as the shard stage writes it (JSON lines) and as the
  `files` table publishes it. Each field says which stage produces it, its duckdb type
  (when the aggregation reads it from the shard records) and its SQLite type (when it
  is a column of `files`); the field order is the column order.
- `CopyRecord`: one verified pair of rasters in the matching jobs' output, a copy or
  (kind 'related', with a reason) the same object in another photograph. Its fields
  with an SQLite type are the columns of `copy_pairs`, in order; `RELATED_PAIRS` is
  the `related_pairs` view of the same record.
- `thumb_path` / `thumb_relpath`: where a content's thumbnail lives.

Adding a column is one field here plus the line of the stage that fills it; the
schema, the duckdb read, the shard record keys and the review pages follow.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

# Stages that produce a FileRecord field.
SHARD = "shard"  # the file's name, stat facts and sha256 (rule decode_shard)
DECODE = "decode"  # facts decoded from the bytes: cached by sha256 (decode.analyse)
AGGREGATE = "aggregate"  # computed when the tables are built (rule aggregate)
MATCH = "match"  # CopyRecord: a matching job's verification (match.py)

# A field without default: every producer must set it.
REQUIRED: Any = dataclasses.MISSING

# Results subdirectory of the content store; the `thumb` column is relative to results.
THUMB_DIR = "thumbs"


# A content's thumbnail in the store: `{sha}` its sha256, `{d}` the first THUMB_SPLIT
# hex digits of it (the review pages fill in the same template).
THUMB_LAYOUT = "{d}/{sha}.jpg"
THUMB_SPLIT = 2


def thumb_path(store: str | os.PathLike, sha: str) -> Path:
    """Thumbnail of a file content in the content store (shared by byte copies).

    Stores are split by the hash's first two hex digits, so no directory holds more
    than a few thousand files even for a large archive.
    """
    return Path(store) / THUMB_LAYOUT.format(d=sha[:THUMB_SPLIT], sha=sha)


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
    to_sql: Callable[[Any, Mapping[str, int]], Any] | None = None,
    default: Any = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A record field with its producer and its column types.

    `duck`: type when read from JSON by duckdb (None: not read); `sql`: SQLite type
    of the table column (None: not a column); `select`: the aggregation's SQL for the
    column (default: the field itself); `name`: column name when it differs from the
    field; `to_sql(value, ids)`: the column's value (ids: raster key -> file_id).
    """
    meta = {"stage": stage, "duck": duck, "sql": sql, "select": select, "name": name}
    meta["to_sql"] = to_sql
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


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
    # estimated quality of a JPEG's luminance table (1-100), see decode.jpeg_quality
    jpeg_quality: int | None = _col(DECODE, "INTEGER", "INTEGER")
    # Not columns of `files`:
    path: str | None = _col(SHARD, "VARCHAR")  # display name, the key of reruns
    params: str | None = _col(SHARD)  # fingerprint of the decode settings
    phash: list[str] | None = _col(DECODE)  # pHash of each of the 8 orientations
    tone_hash: list[str] | None = _col(DECODE)  # hashing.tone_hashes of the 8 orientations
    # the same of the picture inside plain margins and fill (hashing.content_hashes)
    content_hash: list[str] | None = _col(DECODE)
    # pHash of each quarter of the frame in each orientation (hashing.quarter_hashes)
    quarter_phash: list[str] | None = _col(DECODE)

    def set_facts(self, facts: Mapping[str, Any]) -> None:
        """Take the decode facts (missing ones as None) from a decode or cache record."""
        for key in stage_keys(type(self), DECODE):
            setattr(self, key, facts.get(key))

    def facts(self) -> dict[str, Any]:
        """The decode facts alone: what the content store caches per sha256."""
        return {key: getattr(self, key) for key in stage_keys(type(self), DECODE)}

    def shard_dict(self) -> dict[str, Any]:
        """The record as the shard stage writes it (without the aggregation's columns)."""
        return {key: getattr(self, key) for key in stage_keys(type(self), SHARD, DECODE)}


@functools.cache
def stage_keys(cls: type, *stages: str) -> tuple[str, ...]:
    """Names of the fields of a record class that the given stages produce."""
    return tuple(f.name for f in fields(cls) if f.metadata["stage"] in stages)


def table_columns(cls: type) -> list[tuple[str, str]]:
    """(column, SQLite type) of the fields that are table columns, in field order."""
    return [
        (f.metadata["name"] or f.name, f.metadata["sql"])
        for f in fields(cls)
        if f.metadata["sql"] is not None
    ]


def duck_type(sql: str) -> str:
    """The duckdb type of a table column's SQLite type (`INTEGER NOT NULL` -> BIGINT)."""
    return {"INTEGER": "BIGINT", "REAL": "DOUBLE", "TEXT": "VARCHAR"}[sql.split()[0]]


def duckdb_types(cls: type) -> dict[str, str]:
    """Field -> duckdb type of the fields read from JSON lines by duckdb."""
    return {f.name: f.metadata["duck"] for f in fields(cls) if f.metadata["duck"] is not None}


def select_list(cls: type) -> list[str]:
    """SQL expressions `<expr> AS <column>` of the table columns, in column order."""
    return [
        f"{f.metadata['select'] or f.name} AS {f.metadata['name'] or f.name}"
        for f in fields(cls)
        if f.metadata["sql"] is not None
    ]


# Keys decode.analyse fills and the content store caches.
DECODE_KEYS = stage_keys(FileRecord, DECODE)
# Keys of a shard record (JSON lines of rule decode_shard).
SHARD_KEYS = stage_keys(FileRecord, SHARD, DECODE)
# Shard record fields the aggregation reads, with their duckdb types.
RECORD_COLUMNS = duckdb_types(FileRecord)
FILES_COLUMNS = table_columns(FileRecord)
# The aggregation's SELECT list for `files` (from its table of records).
FILES_SELECT = select_list(FileRecord)


def _file_id(key: str, ids: Mapping[str, int]) -> int:
    return ids[key]


def _int(value: Any, _ids: Mapping[str, int]) -> int:
    return int(value)


def _flag(value: Any, _ids: Mapping[str, int]) -> int:
    return int(bool(value))


def copy_kind(quarter_turns: int, mirrored: bool, colour_change: bool) -> str:
    """The kind of a copy whose frame is its source's turned by `quarter_turns` x 90
    degrees (and mirrored), at any scale: a colour change or a mirror alone makes it
    'other', a turn 'rotate90i', else 'resize'. Every path that reports such a copy
    (the hash stage, a fit that came out dihedral) names it here."""
    if colour_change or (quarter_turns % 4 == 0 and mirrored):
        return "other"
    return "rotate90i" if quarter_turns % 4 else "resize"


@dataclass(kw_only=True, slots=True)
class CopyRecord:
    """A verified pair of rasters (by pixel hash `key1`/`key2`; key2 is key1
    transformed), as the matching jobs write it under "copy" or "related".

    Records written before a field existed read it as its default.
    """

    key1: str = _col(
        MATCH, sql="INTEGER NOT NULL", name="file_id1", to_sql=_file_id, default=REQUIRED
    )
    key2: str = _col(
        MATCH, sql="INTEGER NOT NULL", name="file_id2", to_sql=_file_id, default=REQUIRED
    )
    # 'resize', 'rotate90i', 'other', or 'related' (not a copy)
    kind: str = _col(MATCH, sql="TEXT NOT NULL", default=REQUIRED)
    scale: float = _col(MATCH, sql="REAL", default=REQUIRED)
    angle: float = _col(MATCH, sql="REAL", default=REQUIRED)
    mirrored: int = _col(MATCH, sql="INTEGER", to_sql=_int, default=REQUIRED)
    crop_x: float = _col(MATCH, sql="REAL", default=REQUIRED)
    crop_y: float = _col(MATCH, sql="REAL", default=REQUIRED)
    crop_w: float = _col(MATCH, sql="REAL", default=REQUIRED)
    crop_h: float = _col(MATCH, sql="REAL", default=REQUIRED)
    # JSON 3x3 matrix mapping key1's pixels to key2's
    homography: str = _col(MATCH, sql="TEXT", default=REQUIRED)
    inliers: int | None = _col(MATCH, sql="INTEGER", default=REQUIRED)
    score: float = _col(MATCH, sql="REAL", default=REQUIRED)
    # 'phash', 'tone-hash', 'sift', 'sift-geometry', 'grey-alignment'
    method: str | None = _col(MATCH, sql="TEXT")
    area_fraction: float | None = _col(MATCH, sql="REAL")  # crop area / key1's area
    colour_change: bool | None = _col(MATCH, sql="INTEGER", to_sql=_flag)
    # what made key1 the source (see direction.py): 'resolution', 'crop', 'border',
    # 'colour', 'depth', 'format', or for rasters alike in all those, 'quality',
    # 'date', 'bytes' or 'name' (the matching jobs write 'tie' for those)
    direction_by: str | None = _col(MATCH, sql="TEXT")
    # 1 when a curator confirmed the copy (decisions.csv), set by the aggregation
    reviewed: int = _col(AGGREGATE, sql="INTEGER", to_sql=_int, default=0)
    # Not columns of `copy_pairs`:
    hamming: int | None = _col(MATCH)  # pHash distance of the hash stage
    metrics: dict[str, float] = _col(MATCH, factory=dict)  # of the pixel check
    reason: str | None = _col(MATCH)  # why a related pair is not a copy

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CopyRecord:
        """The record of a verdict's "copy" or "related" entry (unknown keys ignored)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into the matching jobs' output (their fields only)."""
        return {
            k: v for k, v in dataclasses.asdict(self).items() if k in stage_keys(CopyRecord, MATCH)
        }


COPY_PAIRS_COLUMNS = table_columns(CopyRecord)
# The figure each kind of copy is described by in its transform_<kind> table.
TRANSFORM_PARAMETER = {"resize": "scale", "rotate90i": "angle", "other": "area_fraction"}


@functools.cache
def row_type(cls: type) -> type:
    """The named tuple of a record class's table row (columns by name and position)."""
    return namedtuple(f"{cls.__name__}Row", [c for c, _ in table_columns(cls)])


def copy_pair_row(c: CopyRecord, ids: Mapping[str, int]) -> tuple:
    """The `copy_pairs` row of a copy (a named tuple), rasters as file_ids by `ids`."""
    values = []
    for f in fields(c):
        if f.metadata["sql"] is not None:
            value, to_sql = getattr(c, f.name), f.metadata["to_sql"]
            values.append(value if to_sql is None else to_sql(value, ids))
    return row_type(type(c))(*values)


class View(NamedTuple):
    """A table column computed from a record: name, SQLite type, value."""

    column: str
    sql: str
    value: Callable[[CopyRecord, Mapping[str, int]], Any]


# `related_pairs`: the related record's columns in the table's (contract) order.
RELATED_PAIRS = (
    View("file_id1", "INTEGER NOT NULL", lambda r, ids: ids[r.key1]),
    View("file_id2", "INTEGER NOT NULL", lambda r, ids: ids[r.key2]),
    View("inliers", "INTEGER", lambda r, _: r.inliers),
    View("score", "REAL", lambda r, _: r.score),
    View("reason", "TEXT", lambda r, _: r.reason),
    View("homography", "TEXT", lambda r, _: r.homography),
    View("scale", "REAL", lambda r, _: r.scale),
    View("angle", "REAL", lambda r, _: r.angle),
    View("mirrored", "INTEGER", lambda r, _: int(r.mirrored)),
    View("overlap", "REAL", lambda r, _: r.area_fraction),
    View("max_block_ratio", "REAL", lambda r, _: r.metrics.get("max_block_ratio")),
    View("colour_block_ratio", "REAL", lambda r, _: r.metrics.get("colour_block_ratio")),
)
RELATED_PAIRS_COLUMNS = [(v.column, v.sql) for v in RELATED_PAIRS]
# the pixel check's metrics a related pair's row shows
RELATED_METRICS = ("max_block_ratio", "colour_block_ratio")


def related_pair_row(r: CopyRecord, ids: Mapping[str, int]) -> tuple:
    """The `related_pairs` row of a related record, its rasters given as file_ids."""
    return tuple(v.value(r, ids) for v in RELATED_PAIRS)
