"""The output contract's tables, in one place for the SQLite writer, JSON and tests.

Tables of a record's fields are derived from the record (archive_twins/records.py).
"""

from __future__ import annotations

from ..records import (
    COPY_PAIRS_COLUMNS,
    FILES_COLUMNS,
    RELATED_PAIRS_COLUMNS,
    TRANSFORM_PARAMETER,
)
from .decisions import DECISION_COLUMNS
from .families import FAMILY_COLUMNS
from .redundant import REDUNDANT_COLUMNS

# A pair a curator decided is not a copy: the pair's copy columns (the contract's, up
# to `score`), the decision's note and time, then copy_pairs' other columns (not
# `reviewed`).
_CONTRACT_COPY = [c for c, _ in COPY_PAIRS_COLUMNS].index("score") + 1
REJECTED_PAIRS_COLUMNS = [
    *COPY_PAIRS_COLUMNS[:_CONTRACT_COPY],
    ("note", "TEXT"),
    ("decided_at", "TEXT"),
    *(c for c in COPY_PAIRS_COLUMNS[_CONTRACT_COPY:] if c[0] != "reviewed"),
]

# (table, [(column, sqlite type)], extra DDL) in the order they are written.
TABLES: dict[str, list[tuple[str, str]]] = {
    "fileid_to_filename_map": [
        ("file_id", "INTEGER PRIMARY KEY"),
        ("filename", "TEXT UNIQUE NOT NULL"),
        # the name's raw bytes (hex): lossless where `filename` escapes non-UTF-8 bytes
        ("filename_bytes", "TEXT NOT NULL"),
    ],
    "files": FILES_COLUMNS,
    "identical_list": [("identical_set_id", "INTEGER NOT NULL"), ("file_id", "INTEGER NOT NULL")],
    "identical_list_stat": [("set_size", "INTEGER NOT NULL"), ("set_count", "INTEGER NOT NULL")],
    "same_pixels_list": [
        ("same_pixels_set_id", "INTEGER NOT NULL"),
        ("file_id", "INTEGER NOT NULL"),
    ],
    "copy_pairs": COPY_PAIRS_COLUMNS,
    "transform_resize": [
        ("file_id1", "INTEGER NOT NULL"),
        ("file_id2", "INTEGER NOT NULL"),
        ("transform_parameter", "REAL"),
    ],
    "transform_rotate90i": [
        ("file_id1", "INTEGER NOT NULL"),
        ("file_id2", "INTEGER NOT NULL"),
        ("transform_parameter", "REAL"),
    ],
    "transform_other": [
        ("file_id1", "INTEGER NOT NULL"),
        ("file_id2", "INTEGER NOT NULL"),
        ("transform_parameter", "REAL"),
    ],
    "transform_list_stat": [("transform", "TEXT NOT NULL"), ("count", "INTEGER NOT NULL")],
    # The same object or scene in two different photographs: the geometry fits, the
    # pixels do not. Never also in copy_pairs.
    "related_pairs": RELATED_PAIRS_COLUMNS,
    # Review: copy families with their master, pairs a curator rejected, the curator's
    # decisions the run read, and what to keep of every set and family.
    "families": FAMILY_COLUMNS,
    "rejected_pairs": REJECTED_PAIRS_COLUMNS,
    "decisions": DECISION_COLUMNS,
    "redundant": REDUNDANT_COLUMNS,
    # Beyond the contract: what the scan skipped, and how this result was made.
    "skipped_files": [("filename", "TEXT NOT NULL"), ("size_bytes", "INTEGER"), ("reason", "TEXT")],
    "run_info": [("key", "TEXT PRIMARY KEY"), ("value", "TEXT")],
}

COPY_KINDS = tuple(TRANSFORM_PARAMETER)  # resize, rotate90i, other

INDEXES = [
    "CREATE INDEX idx_files_sha256 ON files(sha256)",
    "CREATE INDEX idx_identical_file ON identical_list(file_id)",
    "CREATE INDEX idx_same_pixels_file ON same_pixels_list(file_id)",
    "CREATE INDEX idx_copy_pairs_1 ON copy_pairs(file_id1)",
    "CREATE INDEX idx_copy_pairs_2 ON copy_pairs(file_id2)",
    "CREATE INDEX idx_related_1 ON related_pairs(file_id1)",
    "CREATE INDEX idx_related_2 ON related_pairs(file_id2)",
    "CREATE INDEX idx_families_id ON families(family_id)",
    "CREATE INDEX idx_families_file ON families(file_id)",
]


def columns(table: str) -> list[str]:
    """Column names of a contract table, in order."""
    return [c for c, _ in TABLES[table]]
