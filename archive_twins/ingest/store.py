"""The content store: per file content (sha256) a thumbnail and its decode facts.

Takes a content's sha256; gives its thumbnail (`thumbs/ab/<sha256>.jpg`, shared by
byte copies) checked against the size and CRC-32 recorded in its facts
(`thumbs/ab/<sha256>.json`, key `thumb_crc`) when it was written. A thumbnail that
differs (bit rot, a partial restore: a truncated JPEG decodes to a grey half and
would make a copy look different) is rebuilt by the caller's `repair` (decoding a
file that holds the content again, `shard.repair_content`) before it is used, with a
line in the log. Light on purpose: the matching jobs read thumbnails through it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..ledger import file_crc
from ..records import thumb_path

# the logger keeps the name it had before the stage packages (job logs unchanged)
log = logging.getLogger("archive_twins.store")


def content_paths(store: str | os.PathLike, sha: str) -> tuple[Path, Path]:
    """Thumbnail and decode-record paths of a content hash in the store."""
    thumb = thumb_path(store, sha)
    return thumb, thumb.with_suffix(".json")


def read_facts(store: str | os.PathLike, sha: str) -> dict | None:
    """The decode facts stored for a content, or None (missing, unreadable)."""
    try:
        data = json.loads(content_paths(store, sha)[1].read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def thumb_intact(store: str | os.PathLike, sha: str, facts: dict | None = None) -> bool:
    """Whether a content's thumbnail is there and is what was written (facts of an
    older version without a CRC: its presence)."""
    facts = read_facts(store, sha) if facts is None else facts
    thumb = content_paths(store, sha)[0]
    try:
        crc = (facts or {}).get("thumb_crc")
        return thumb.is_file() if crc is None else file_crc(thumb) == crc
    except OSError:
        return False


def load_thumbnail(
    store: str | os.PathLike, sha: str, repair: Callable[[str], bool] | None = None
) -> np.ndarray:
    """A content's thumbnail as RGB pixels, checked (and rebuilt by `repair` when it
    is damaged or lost); FileNotFoundError when there is none to be had."""
    path = content_paths(store, sha)[0]
    if not thumb_intact(store, sha):
        log.warning("thumbnail %s missing or damaged: rebuilding it", path)
        if repair is None or not repair(sha) or not thumb_intact(store, sha):
            raise FileNotFoundError(path)
    arr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
