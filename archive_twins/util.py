"""Small helpers shared by every stage: atomic writes and stable keys."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it (from /proc where available).

    mkstemp and mkdtemp create private 0600/0700 entries; outputs must instead get
    the permissions `cp` would give them, so they are chmod-ed to this umask.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new regular file under the current umask (0644 for umask 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode of a new directory under the current umask (0755 for umask 022)."""
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kw: Any) -> Iterator[IO]:
    """Write to a temporary file beside `path` and rename it into place.

    An interrupted job never leaves a half-written output that a rerun could mistake
    for a finished one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, **kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a fresh temporary directory beside `path`, then swap it in as `path`.

    Readers (a browser, a later job) see the old directory or the new one, never
    a half-written mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp.chmod(dir_mode())
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# What a run delivers in {results}/, published together from {results}/staging/
# (generations.publish).
DELIVERABLES = ("archive.sqlite", "json", "html", "csv")


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a directory tree (missing is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def inside(path: str, root: str) -> bool:
    """True when the resolved `path` is `root` or below it (both resolved paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def with_check(data: bytes) -> bytes:
    """`data` after a line holding its size and CRC-32, so that damage (bit rot, a
    partial restore) is told from what was written (`checked`)."""
    head = json.dumps({"bytes": len(data), "crc32": f"{zlib.crc32(data):08x}"})
    return head.encode("ascii") + b"\n" + data


def checked(raw: bytes) -> bytes | None:
    """The data of `with_check`; None when `raw` has no check line (written
    without one); ValueError when the data does not match its check."""
    head, sep, body = raw.partition(b"\n")
    try:
        check = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        return None
    if not sep or not isinstance(check, dict) or "crc32" not in check:
        return None
    if (len(body), f"{zlib.crc32(body):08x}") != (check.get("bytes"), check["crc32"]):
        raise ValueError("content does not match its check")
    return body


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Atomically write `text` unless the file already holds it; keeps mtimes stable.

    Snakemake decides reruns by mtime, so rewriting an unchanged manifest would
    trigger needless work.
    """
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Atomically write rows as JSON lines (ASCII-escaped so any filename survives)."""
    with atomic_open(path, "w", encoding="ascii") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=True, sort_keys=True))
            fh.write("\n")


def read_jsonl(path: str | os.PathLike, missing_ok: bool = True) -> list[dict]:
    """Read JSON lines written by `write_jsonl`; a missing file reads as empty
    unless `missing_ok` is false."""
    try:
        with open(path, encoding="ascii") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        if not missing_ok:
            raise
        return []


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a JSON lines file one at a time (a matching job's verdicts with
    their metrics are a few KB each: read whole, a large chunk took GBs)."""
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def iter_json_array(path: str | os.PathLike, chunk: int = 1 << 20) -> Iterator[Any]:
    """The elements of a JSON file holding one array, parsed one at a time from a
    sliding buffer: a table of a million files is never one Python list."""
    dec = json.JSONDecoder()
    with open(path, encoding="utf-8") as fh:
        buf, pos, eof = "", 0, False

        def fill() -> bool:  # more text, or False at the end of the file
            nonlocal buf, pos, eof
            more = "" if eof else fh.read(chunk)
            eof = not more
            buf, pos = buf[pos:] + more, 0
            return bool(more)

        state = "open"  # then: "first" element or "]", "sep" (, or ]), "elem"
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos == len(buf):
                if fill():
                    continue
                raise ValueError(f"{path}: unterminated JSON array")
            c = buf[pos]
            if state == "open":
                if c != "[":
                    raise ValueError(f"{path}: not a JSON array")
                pos, state = pos + 1, "first"
                continue
            if c == "]" and state in ("first", "sep"):
                return
            if state == "sep":
                if c != ",":
                    raise ValueError(f"{path}: expected , or ] at {pos}")
                pos, state = pos + 1, "elem"
                continue
            try:
                obj, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if fill():
                    continue
                raise
            if end > len(buf) - 64 and not eof:
                fill()  # a number may go on in the next chunk (1.5 of 1.5e-7)
                continue
            yield obj
            pos, state = end, "sep"


def json_table(json_dir: str | os.PathLike, name: str) -> Iterator[Any]:
    """The rows of a deliverable's `<name>.json`, parsed one at a time (a table an
    older run did not write reads as empty)."""
    path = Path(json_dir) / f"{name}.json"
    return iter_json_array(path) if path.exists() else iter(())


def file_check(config: dict) -> str:
    """How unchanged files are recognised: `file_check` (quick or full). `verify`, its
    name before (it read like the pixel check's `matching.verify`), is still read: full
    when either says full, the stricter of the two."""
    return "full" if "full" in (config.get("file_check"), config.get("verify")) else "quick"


def fingerprint(tag: str, settings: Any) -> str:
    """The one form of every cache key's settings part: a readable tag (bump its
    version when the code's output changes) and a digest of the settings, so any
    changed setting changes the key."""
    raw = json.dumps(settings, sort_keys=True, default=str)
    return f"{tag}:{hashlib.sha1(raw.encode()).hexdigest()[:16]}"


def path_key(relpath: str) -> str:
    """Stable 64-bit hex key of a relative path (shard assignment, file identity)."""
    raw = relpath.encode("utf-8", "surrogateescape")
    return hashlib.sha1(raw).hexdigest()[:16]


def shard_assignment(
    paths: Iterable[str], n_shards: int, folder_files: int = 128
) -> dict[str, int]:
    """Shard of every path, folder by folder.

    A folder's files stay together: a folder of m files is cut into k buckets (k the
    smallest power of two with k * folder_files >= m; a file's bucket is a hash of
    its path mod k) and each bucket goes to the shard a hash of (folder, bucket)
    picks. So a new folder of m files touches about m / folder_files shards, not all
    of them; a new file touches its bucket's shard; and when a folder grows past a
    power of two, only half of its files move (bucket b splits into b and b + k).
    Many buckets per shard keep shards balanced: choose folder_files well below the
    files per shard (default 128 for about 1,000 files a shard).
    """
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        by_dir.setdefault(posixpath.dirname(p), []).append(p)
    out: dict[str, int] = {}
    for folder, members in by_dir.items():
        k = 1
        while k * folder_files < len(members):
            k *= 2
        for p in members:
            bucket = int(path_key(p), 16) % k
            out[p] = int(path_key(f"{folder}\0{bucket}"), 16) % n_shards
    return out


def raw_name(relpath: str) -> bytes:
    """The bytes of a path as the filesystem holds them (os.fsdecode'd names keep
    undecodable bytes as lone surrogates)."""
    return relpath.encode("utf-8", "surrogateescape")


def display_name(relpath: str) -> str:
    """Filename as valid UTF-8 text, even for names that are not valid UTF-8 on disk:
    undecodable bytes are shown as `\\xNN` (a Latin-1 `café` reads `caf\\xe9`)."""
    return raw_name(relpath).decode("utf-8", "backslashreplace")
