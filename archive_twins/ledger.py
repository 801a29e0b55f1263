"""What each job was built from and what it wrote, kept in the results directory.

Takes the manifests, the config and the jobs' outputs; gives each job a stamp (an
input file) that forces it when its outputs do not match what they must be built
from, and the check a job makes before it reads its own previous output as a cache.

Snakemake decides what to rerun from its records in the working directory's
`.snakemake/`, which a results directory restored from a backup, a job failing on a
full disk, or another working directory leave out of step with the results. So the
workflow keeps its own records beside the results:

- `state/stamps/<job>.json`, an input of the job: `want`, a digest of everything the
  job's outputs must be built from (its shard's manifest, or the `want`s of the jobs
  before it, and its settings), and `force`, a token rewritten to make Snakemake rerun
  the job (the file is then newer than the outputs and its content new);
- `state/built/<job>.json`, written by the job once its outputs are in place: the
  `want` it was built from and each output file's size, CRC-32, mtime and inode.

At parse time `check` forces every job whose record is missing, was built from
another `want`, or whose outputs differ from their record; a forced job's jobs
downstream rerun with it (Snakemake's rule). A job reading its own previous output
(`drop_damaged`) removes it first when it differs from its record, so it is rebuilt
from its inputs. A file's CRC is only recomputed when its size, mtime or inode differ
from the record, so a normal run pays a `stat` per output file; Snakemake touches
every output after its job, which a successful run adopts at its end
(`adopt_touches`: same size and inode, a new mtime), so each byte written is read
back once, by `record`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from .util import atomic_open, remove_path

log = logging.getLogger("archive_twins.ledger")

STAMPS = "state/stamps"
BUILT = "state/built"


def digest(parts: object) -> str:
    """A short digest of JSON-able parts (the `want` of a job)."""
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(raw).hexdigest()[:16]


def file_crc(path: str | os.PathLike, bufsize: int = 1 << 20) -> str:
    """`<size>:<CRC-32>` of a file's bytes (4 GB/s: damage, not an adversary, is
    what it detects)."""
    crc, size = 0, 0
    with open(path, "rb") as fh:
        while block := fh.read(bufsize):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return f"{size}:{crc:08x}"


def _facts(path: Path, with_crc: bool = True, seen: dict | None = None) -> list:
    """[size, CRC, mtime, inode] of a file; `seen` holds the CRCs of inodes already
    read (the index and its base are hard links of the same files)."""
    st = path.stat()
    crc = None
    if with_crc:
        key = (st.st_dev, st.st_ino)
        crc = seen.get(key) if seen is not None else None
        if crc is None:
            crc = file_crc(path)
            if seen is not None:
                seen[key] = crc
    return [st.st_size, crc, st.st_mtime_ns, st.st_ino]


def _files(outputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The files of some outputs (directories by their files, recursively), as
    absolute paths (a job's paths are relative to its working directory)."""
    out = []
    for o in outputs:
        p = Path(o).absolute()
        if p.is_dir():
            # not Snakemake's .snakemake_timestamp, touched after every job
            files = (f for f in p.rglob("*") if not f.name.startswith(".snakemake"))
            out.extend(sorted(f for f in files if f.is_file() and not f.is_symlink()))
        elif p.is_file():
            out.append(p)
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _where(stamp: str | os.PathLike) -> tuple[Path, str]:
    """Results directory (absolute) and job name of a stamp
    (`{results}/state/stamps/<job>.json`)."""
    stamp = Path(stamp).absolute()
    return stamp.parents[2], stamp.stem


def built(results: str | os.PathLike, job: str) -> dict | None:
    """The record a job left when it last succeeded, if any."""
    return _read_json(Path(results) / BUILT / f"{job}.json")


def record(stamp: str | os.PathLike | None, outputs: Iterable[str | os.PathLike]) -> None:
    """Record, after a job succeeded, the `want` of its stamp and its output files
    (nothing without a stamp: a job called outside the workflow).

    Written last: a job killed before this leaves the previous record, which then
    does not match the new outputs or the new `want`, so the job is redone.
    """
    if stamp is None:
        return
    results, job = _where(stamp)
    want = (_read_json(Path(stamp)) or {}).get("want")
    seen: dict = {}
    files = {f.relative_to(results).as_posix(): _facts(f, seen=seen) for f in _files(outputs)}
    with atomic_open(results / BUILT / f"{job}.json", "w", encoding="utf-8") as fh:
        json.dump({"want": want, "outputs": files}, fh, sort_keys=True)


def _matches(results: Path, rel: str, facts: list, refreshed: dict) -> bool:
    """Whether an output file still is what its record says (CRC only when the
    stat moved; a match then refreshes the stat in `refreshed`)."""
    p = results / rel
    try:
        now = _facts(p, with_crc=False)
    except OSError:
        return False
    size, crc, mtime, ino = facts
    if now[0] != size:
        return False
    if [now[2], now[3]] == [mtime, ino]:
        return True
    try:
        ok = file_crc(p) == crc
    except OSError:
        return False
    if ok:
        refreshed[rel] = [size, crc, now[2], now[3]]
    return ok


def _damaged(results: Path, rec: dict, paths: Iterable[str] | None = None) -> list[str]:
    """The recorded output files (or those among `paths`) that differ from the
    record; refreshes the record's stats of files that only moved."""
    outputs = rec.get("outputs") or {}
    refreshed: dict[str, list] = {}
    bad = [
        rel
        for rel, facts in sorted(outputs.items())
        if (paths is None or rel in paths) and not _matches(results, rel, facts, refreshed)
    ]
    if refreshed:
        outputs.update(refreshed)
    return bad


def drop_damaged(stamp: str | os.PathLike | None, paths: Iterable[str | os.PathLike]) -> list[str]:
    """Before a job reads its own previous outputs `paths` as a cache: remove those
    (files, or directories by any of their files) that differ from the job's
    record, with a line in the log, so they are rebuilt from their inputs. Without
    a record (results of an older version) they are kept. Returns what was removed."""
    if stamp is None:
        return []
    results, job = _where(stamp)
    rec = built(results, job)
    if rec is None:
        return []
    removed = []
    for path in paths:
        rel = Path(path).absolute().relative_to(results).as_posix()
        mine = [r for r in rec.get("outputs") or {} if r == rel or r.startswith(rel + "/")]
        if not os.path.lexists(results / rel):
            continue
        if not mine or _damaged(results, rec, set(mine)):
            why = "has no record" if not mine else "differs from its record (damaged)"
            log.warning("%s %s: ignored, rebuilt from its inputs", rel, why)
            remove_path(results / rel)
            removed.append(rel)
    return removed


def check(results: str | os.PathLike, jobs: Mapping[str, tuple[str, list[str]]]) -> dict[str, str]:
    """At parse time: write each job's stamp (`jobs`: job -> (want, its outputs
    relative to results)) and force the jobs whose outputs exist but are not what
    they must be; returns {job: why} of the forced ones."""
    results = Path(results)
    forced = {}
    for job, (want, outputs) in jobs.items():
        why = None
        if any(os.path.lexists(results / o) for o in outputs):
            rec = built(results, job)
            if rec is None:
                why = "no record of what its outputs were built from"
            elif rec.get("want") != want:
                why = "its outputs were built from other inputs or settings"
            else:
                before = json.dumps(rec, sort_keys=True)
                bad = _damaged(results, rec)
                missing = [o for o in outputs if not os.path.lexists(results / o)]
                if bad or missing:
                    why = f"{(bad or missing)[0]} differs from its record (damaged)"
                elif json.dumps(rec, sort_keys=True) != before:
                    with atomic_open(results / BUILT / f"{job}.json", "w") as fh:
                        json.dump(rec, fh, sort_keys=True)
        if why:
            forced[job] = why
        _stamp(results / STAMPS / f"{job}.json", want, force=why is not None)
    return forced


def _stamp(path: Path, want: str, force: bool) -> None:
    """Leave a stamp alone unless its `want` changed or the job is forced (a new
    token): an untouched stamp keeps its mtime, so it reruns nothing."""
    old = _read_json(path)
    if not force and old is not None and old.get("want") == want:
        return
    token = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {time.time_ns()}"
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump({"want": want, "force": token if force else None}, fh, sort_keys=True)


def adopt_touches(results: str | os.PathLike, since_ns: int) -> None:
    """At the end of a successful run: take the new mtimes Snakemake gave the outputs
    of the jobs that recorded since `since_ns` (same size and inode), so the next
    parse does not read them again."""
    built_dir = Path(results) / BUILT
    if not built_dir.is_dir():
        return
    for path in built_dir.glob("*.json"):
        try:
            if path.stat().st_mtime_ns < since_ns:
                continue
        except OSError:
            continue
        rec = _read_json(path)
        if rec is None:
            continue
        changed = False
        for rel, facts in (rec.get("outputs") or {}).items():
            try:
                st = (Path(results) / rel).stat()
            except OSError:
                continue
            if [st.st_size, st.st_ino] == [facts[0], facts[3]] and st.st_mtime_ns != facts[2]:
                facts[2], changed = st.st_mtime_ns, True
        if changed:
            with atomic_open(path, "w", encoding="utf-8") as fh:
                json.dump(rec, fh, sort_keys=True)


def remove_other_jobs(results: str | os.PathLike, jobs: Iterable[str]) -> None:
    """Forget stamps and records of jobs that no longer exist (fewer shards or
    chunks than before)."""
    keep = set(jobs)
    for where in (STAMPS, BUILT):
        d = Path(results) / where
        if d.is_dir():
            for p in d.glob("*.json"):
                if p.stem not in keep:
                    p.unlink(missing_ok=True)
