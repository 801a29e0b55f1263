"""Process one shard of the archive: the per-file stage of the workflow.

Work is skipped at two levels so that reruns cost work proportional to the change:
1. a file whose (path, size, mtime) is unchanged since the shard's previous output
   keeps its record without being read at all;
2. a new or changed file is read once for its sha256 (and its decode, from the same
   bytes in memory); if a file with the same bytes was decoded before (anywhere in
   the archive), its decode results are reused from the content store, so byte
   copies are decoded once.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .decode import DecodeParams, analyse, exif_orientation, read_hashed
from .records import FileRecord, thumb_path
from .util import atomic_open, display_name, raw_name, read_jsonl, write_jsonl

log = logging.getLogger("archive_twins.shard")

# Stand-in for the file in cached decode errors: the cache is shared by every byte
# copy of a content, so the record's own relative name is put in when it is used.
FILE_TOKEN = "\x00file\x00"


@dataclass
class ShardStats:
    """Counts a rerun is judged by: how many files were read and decoded."""

    files: int = 0
    unchanged: int = 0
    hashed: int = 0
    decoded: int = 0
    content_reused: int = 0
    errors: int = 0


def content_paths(store: Path, sha: str) -> tuple[Path, Path]:
    """Thumbnail and decode-record paths of a content hash in the store."""
    thumb = thumb_path(store, sha)
    return thumb, thumb.with_suffix(".json")


def _load_content(store: Path, sha: str, fp: str) -> dict | None:
    thumb, meta = content_paths(store, sha)
    try:
        rec = json.loads(meta.read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return None
    if rec.get("params") != fp or (rec.get("status") == "ok" and not thumb.exists()):
        return None
    return rec


def _unchanged(old: dict | None, entry: dict, store: Path) -> bool:
    """A previous record still describes the file: same size, mtime, ctime and inode
    (all from the scan's stat, nothing is read), and its thumbnail is still there."""
    return (
        old is not None
        and "scan_error" not in entry
        and all(old.get(k) == entry.get(m) for k, m in _STAT_KEYS)
        and (old["status"] != "ok" or content_paths(store, old["sha256"])[0].exists())
    )


# record key -> manifest key of the stat facts that decide "unchanged"
_STAT_KEYS = (
    ("size_bytes", "size"),
    ("mtime_ns", "mtime_ns"),
    ("ctime_ns", "ctime_ns"),
    ("inode", "inode"),
)


def process_shard(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    archive: str | os.PathLike,
    store: str | os.PathLike,
    params: DecodeParams,
    full: bool = False,
) -> ShardStats:
    """Bring `output` (JSON lines, one record per manifest entry) up to date.

    `full` (config `verify: full`) re-hashes every file instead of trusting an
    unchanged stat; decoding is still reused by content (sha256).
    """
    archive, store = Path(archive), Path(store)
    fp = params.fingerprint()
    previous = {r["path"]: r for r in read_jsonl(output) if r.get("params") == fp}
    stats = ShardStats()
    rows = []
    for entry in read_jsonl(manifest):
        stats.files += 1
        old = previous.get(display_name(entry["path"]))
        if not full and _unchanged(old, entry, store):
            stats.unchanged += 1
            rows.append(old)
            stats.errors += old["status"] == "error"
            continue
        rec = _process_file(archive, store, entry, params, stats)
        stats.errors += rec["status"] == "error"
        rows.append(rec)
    write_jsonl(output, rows)
    return stats


def _process_file(
    archive: Path, store: Path, entry: dict, params: DecodeParams, stats: ShardStats
) -> dict:
    fp = params.fingerprint()
    path = entry["path"]  # os.fsdecode'd: undecodable bytes are lone surrogates
    name = display_name(path)
    rec = FileRecord(
        # Records hold valid UTF-8 only (duckdb rejects lone surrogates): `path` is
        # the display name, `filename_bytes` the name's raw bytes in hex.
        path=name,
        filename=name,
        filename_bytes=raw_name(path).hex(),
        size_bytes=entry["size"] if entry["size"] >= 0 else None,
        mtime_ns=entry["mtime_ns"],
        ctime_ns=entry.get("ctime_ns"),
        inode=entry.get("inode"),
        params=fp,
    )
    if "scan_error" in entry:
        rec.status, rec.error = "error", entry["scan_error"]
        return rec.shard_dict()
    abspath = os.fspath(archive / path)
    try:
        rec.sha256, data = read_hashed(abspath)
        stats.hashed += 1
    except OSError as exc:
        rec.status, rec.error = "error", f"cannot read: {exc.strerror or exc}"
        return rec.shard_dict()
    cached = _load_content(store, rec.sha256, fp)
    if cached is not None:
        stats.content_reused += 1
        if "exif_orientation" not in cached:  # cached before the column existed
            cached["exif_orientation"] = exif_orientation(abspath)
        rec.set_facts(cached)
    else:
        thumb, meta = content_paths(store, rec.sha256)
        log.info("decode %s", name)
        decoded, _pixels = analyse(abspath, os.fspath(thumb), params, name=FILE_TOKEN, data=data)
        stats.decoded += 1
        rec.set_facts(decoded)
        with atomic_open(meta, "w", encoding="ascii") as fh:
            json.dump({**rec.facts(), "params": fp}, fh, sort_keys=True)
    if rec.error:  # a cached error names the file by a token: put in this file's name
        rec.error = rec.error.replace(FILE_TOKEN, name)
    return rec.shard_dict()
