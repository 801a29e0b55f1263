"""The file_id registry, `{results}/state/file_ids.json`: path -> file_id.

Takes the registry file (and, when it is lost, the last published archive.sqlite);
gives the ids to keep and the next free one.

A path keeps its id for as long as the registry lives, also while its file is away
(a folder that did not mount, one removed and put back): ids of every path ever
seen are kept, and ids are never handed out twice. The file starts with the size
and CRC-32 of its content, so damage is told from a valid registry, and checking it
on every run costs one read; a registry that is lost or damaged is rebuilt from the
published `archive.sqlite` (the ids of the files published there, and its
`next_file_id`; paths absent from it then get new ids when they come back), with a
line in the log.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..util import atomic_open, checked, with_check

# the logger keeps the name it had before the stage packages (job logs unchanged)
log = logging.getLogger("archive_twins.registry")


class Damaged(ValueError):
    """A registry file that is not what was written."""


def _body(path: str | os.PathLike) -> bytes | None:
    """The registry's JSON, checked against the size and CRC-32 on its first line
    (None when there is no registry); a registry of an older version (one JSON
    object, no check line) is returned whole."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Damaged(f"{path}: {exc}") from None
    try:
        body = checked(raw)
    except ValueError as exc:
        raise Damaged(f"{path}: {exc}") from None
    return raw if body is None else body


def load(path: str | os.PathLike) -> tuple[dict[str, int], int]:
    """Path -> file_id and the next free id; ({}, 1) when there is none. Raises
    Damaged when the file is not a registry this workflow wrote."""
    body = _body(path)
    if body is None:
        return {}, 1
    try:
        data = json.loads(body)
        return dict(data["ids"]), int(data["next_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Damaged(f"{path}: {exc}") from None


def save(path: str | os.PathLike, ids: dict[str, int], next_id: int) -> None:
    """Write the registry atomically: a line with the size and CRC-32 of the JSON
    that follows it."""
    body = json.dumps({"ids": ids, "next_id": next_id}, ensure_ascii=True, sort_keys=True)
    with atomic_open(path, "wb") as fh:
        fh.write(with_check(body.encode("ascii")))


def from_sqlite(sqlite: str | os.PathLike) -> tuple[dict[str, int], int]:
    """The ids of the files a published archive.sqlite lists, and its next free id
    (`run_info.next_file_id`, else one above the highest id)."""
    import sqlite3  # here: only a rebuild needs it, and every parse imports us

    con = sqlite3.connect(f"file:{os.fspath(sqlite)}?mode=ro", uri=True)
    try:
        ids = dict(con.execute("SELECT filename, file_id FROM fileid_to_filename_map"))
        row = con.execute("SELECT value FROM run_info WHERE key = 'next_file_id'").fetchone()
    finally:
        con.close()
    next_id = int(row[0]) if row else 0
    return ids, max(next_id, max(ids.values(), default=0) + 1)


def load_or_rebuild(path: str | os.PathLike, published: str | os.PathLike) -> tuple[dict, int]:
    """`load`, or, when the registry is lost or damaged while results were
    published (`published`: their archive.sqlite), the registry rebuilt from them
    (and written back, with a line in the log)."""
    why = _trouble(path, published)
    if why is None:
        return load(path)
    ids, next_id, note = _rebuild(path, published, why)
    log.warning("%s", note)
    return ids, next_id


def ensure(path: str | os.PathLike, published: str | os.PathLike) -> str | None:
    """At parse time: mend a lost or damaged registry; what was done, for the log."""
    why = _trouble(path, published)
    return None if why is None else _rebuild(path, published, why)[2]


def _trouble(path: str | os.PathLike, published: str | os.PathLike) -> str | None:
    """Why the registry must be rebuilt (its check failed, or it is gone while
    results were published), or None."""
    try:
        body = _body(path)
        if body is not None and not body.startswith(b'{"ids"'):
            load(path)  # an older version's registry, without a check: parsed
    except Damaged as exc:
        return f"damaged ({exc})"
    if body is None and Path(published).exists():
        return "lost"
    return None


def _rebuild(path: str | os.PathLike, published: str | os.PathLike, why: str) -> tuple:
    import sqlite3

    try:
        ids, next_id = from_sqlite(published)
        note = f"file_id registry {why}: rebuilt from {published} ({len(ids)} ids)"
    except (OSError, sqlite3.Error) as exc:
        ids, next_id = {}, 1
        note = f"file_id registry {why}, and {published} unreadable ({exc}): a new one"
    save(path, ids, next_id)
    return ids, next_id, note
