"""Process one shard of the archive: the per-file stage of the workflow.

Work is skipped at two levels so that reruns cost work proportional to the change:
1. a file whose (path, size, mtime) is unchanged since the shard's previous output
   keeps its record without being read at all;
2. a new or changed file is read once for its sha256 (and its decode, from the same
   bytes in memory); if a file with the same bytes was decoded before (anywhere in
   the archive), its decode results are reused from the content store, so byte
   copies are decoded once.

A file is opened once and every read (hash, decode, EXIF) goes through that open
file (`/proc/self/fd/N`), after checking that what was opened lies inside the
archive: a symlink re-pointed between the scan and the job is refused, never read.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..ledger import file_crc
from ..progress import Progress
from ..records import DECODE_KEYS, FileRecord
from ..util import atomic_open, display_name, inside, raw_name, read_jsonl, write_jsonl
from .decode import DecodeParams, analyse, exif_orientation, read_hashed
from .store import content_paths, read_facts, thumb_intact

# the logger keeps the name it had before the stage packages (job logs unchanged)
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


def _load_content(store: Path, sha: str, fp: str) -> dict | None:
    """The stored decode of a content, if made with these settings and its
    thumbnail is intact (else it is decoded again, which rewrites both)."""
    rec = read_facts(store, sha)
    if rec is None or rec.get("params") != fp:
        return None
    if rec.get("status") == "ok" and not thumb_intact(store, sha, rec):
        log.warning("thumbnail of %s missing or damaged: decoded again", sha)
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

    `full` (config `file_check: full`) re-hashes every file instead of trusting an
    unchanged stat; decoding is still reused by content (sha256).
    """
    archive, store = Path(archive), Path(store)
    real_root = os.path.realpath(archive)
    fp = params.fingerprint()
    previous = {r["path"]: r for r in read_jsonl(output) if r.get("params") == fp}
    stats = ShardStats()
    rows = []
    entries = list(read_jsonl(manifest))
    progress = Progress(len(entries), log)
    for entry in progress.each(entries):
        stats.files += 1
        old = previous.get(display_name(entry["path"]))
        if not full and _unchanged(old, entry, store):
            stats.unchanged += 1
            rows.append(old)
            stats.errors += old["status"] == "error"
            continue
        rec = _process_file(archive, real_root, store, entry, params, stats)
        stats.errors += rec["status"] == "error"
        rows.append(rec)
    write_jsonl(output, rows)
    return stats


class Refused(OSError):
    """An archive entry that must not be read (the reason is the message)."""


def open_pinned(path: str, real_root: str) -> tuple[int, str]:
    """Open a file once: its descriptor and a path naming that very file
    (`/proc/self/fd/N`, which later opens reach whatever happens to `path`).

    Refused when the opened file lies outside the archive `real_root` (a symlink
    re-pointed since the scan) or is not a regular file (opened non-blocking, so a
    FIFO put in its place cannot hang the job). Without /proc, the resolved name is
    checked to be the file that was opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file")
        pinned = f"/proc/self/fd/{fd}"
        try:
            where = os.readlink(pinned)
        except OSError:
            pinned = where = os.path.realpath(path)
            again = os.stat(where)
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
                raise Refused("changed while being opened") from None
        if not inside(where, real_root):
            raise Refused("symlink leaving the archive (not followed)")
    except BaseException:
        os.close(fd)
        raise
    return fd, pinned


def _process_file(
    archive: Path,
    real_root: str,
    store: Path,
    entry: dict,
    params: DecodeParams,
    stats: ShardStats,
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
    try:
        fd, pinned = open_pinned(os.fspath(archive / path), real_root)
    except Refused as exc:
        rec.status, rec.error = "error", str(exc)
        return rec.shard_dict()
    except OSError as exc:
        rec.status, rec.error = "error", f"cannot read: {exc.strerror or exc}"
        return rec.shard_dict()
    try:
        return _read_pinned(rec, pinned, store, params, stats)
    finally:
        os.close(fd)


def _read_pinned(
    rec: FileRecord, abspath: str, store: Path, params: DecodeParams, stats: ShardStats
) -> dict:
    """The record of an opened file (`abspath` names it, see `open_pinned`)."""
    fp, name = params.fingerprint(), rec.path
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
        log.info("decode %s", name)
        rec.set_facts(decode_into_store(abspath, store, rec.sha256, params, data))
        stats.decoded += 1
    if rec.error:  # a cached error names the file by a token: put in this file's name
        rec.error = rec.error.replace(FILE_TOKEN, name)
    return rec.shard_dict()


def decode_into_store(
    abspath: str, store: Path, sha: str, params: DecodeParams, data: memoryview | None = None
) -> dict:
    """Decode a file (from `data`, its bytes, when read already) into the content
    store: its thumbnail, and its decode facts with the thumbnail's CRC (checked
    whenever the thumbnail is read)."""
    thumb, meta = content_paths(store, sha)
    decoded, _pixels = analyse(abspath, os.fspath(thumb), params, name=FILE_TOKEN, data=data)
    facts = {key: decoded.get(key) for key in DECODE_KEYS}
    entry = {**facts, "params": params.fingerprint()}
    if facts["status"] == "ok":
        entry["thumb_crc"] = file_crc(thumb)
    with atomic_open(meta, "w", encoding="ascii") as fh:
        json.dump(entry, fh, sort_keys=True)
    return facts


def repair_content(
    results: str | os.PathLike, archive: str | os.PathLike, sha: str, params: DecodeParams
) -> bool:
    """Rebuild a content's thumbnail and facts from a file that holds it (found in
    the shard records, checked to still hold those bytes); False when none does."""
    results, real_root = Path(results), os.path.realpath(archive)
    for records in sorted((results / "shards").glob("shard-*.jsonl")):
        try:
            with open(records, encoding="ascii") as fh:
                rows = [json.loads(line) for line in fh if sha in line]
        except (OSError, ValueError):
            continue
        for r in rows:
            if r.get("sha256") != sha or r.get("status") != "ok":
                continue
            rel = os.fsdecode(bytes.fromhex(r["filename_bytes"]))
            try:
                fd, pinned = open_pinned(os.path.join(real_root, rel), real_root)
            except OSError:
                continue
            try:
                got, data = read_hashed(pinned)
                if got != sha:
                    continue
                decode_into_store(pinned, results / "thumbs", sha, params, data)
            finally:
                os.close(fd)
            log.warning("content %s rebuilt from %s", sha, r["path"])
            return True
    return False
