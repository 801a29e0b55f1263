"""Walk the archive once, classify files and write one manifest per shard.

The manifests are the only thing the Snakemake DAG depends on: a shard's manifest
is rewritten only when a file in that shard appears, changes (size or mtime) or
disappears, so Snakemake reruns exactly the shards touched by a change.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..util import inside, shard_assignment, write_text_if_changed

IMAGE_EXT = re.compile(r"\.(tiff?|jpe?g|png)$", re.IGNORECASE)


@dataclass
class ScanResult:
    """Everything found under the archive root."""

    images: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    """True for the contract's image extensions in any case (also `.tif.tif`)."""
    return IMAGE_EXT.search(name) is not None


def scan_archive(
    root: str | os.PathLike,
    follow_symlinks: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
) -> ScanResult:
    """List image files (path, size, mtime, ctime, inode) and skipped entries.

    Directory symlinks are not followed unless asked, so a symlink loop cannot hang
    the scan; symlinks resolving outside the archive (files and folders, followed or
    not) are never followed (the archive is what was asked for); unreadable
    directories are reported instead of aborting. Directories in `exclude` (the
    workflow's own results and `.snakemake/`) are never entered, so a run cannot
    ingest its own thumbnails.
    """
    root = os.fspath(root)
    real_root = os.path.realpath(root)
    result = ScanResult()
    seen_dirs: set[tuple[int, int]] = set()
    excluded = set()
    for path in exclude:
        try:
            st = os.stat(path)
        except OSError:
            continue
        excluded.add((st.st_dev, st.st_ino))
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            st = os.stat(abs_dir)
            if (st.st_dev, st.st_ino) in excluded:
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:
                result.skipped.append(
                    {"filename": rel_dir, "size_bytes": None, "reason": "directory loop"}
                )
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            result.skipped.append(
                {
                    "filename": rel_dir or ".",
                    "size_bytes": None,
                    "reason": f"{UNLISTABLE}: {exc.strerror or exc}",
                }
            )
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_link = entry.is_symlink()
            # a symlink leaving the archive is refused alike for files and folders
            # (followed folders included): the archive is what was asked for
            leaves = is_link and not inside(os.path.realpath(entry.path), real_root)
            is_dir = _is_dir(entry, follow_symlinks)
            if is_dir and not leaves:
                stack.append(rel)
                continue
            if is_link and not leaves and _is_dir(entry, True):
                result.skipped.append(
                    {
                        "filename": rel,
                        "size_bytes": None,
                        "reason": "symlink to a directory (not followed)",
                    }
                )
                continue
            if leaves:
                result.skipped.append(
                    {
                        "filename": rel,
                        "size_bytes": None,
                        "reason": "symlink leaving the archive (not followed)",
                    }
                )
                continue
            _add_file(result, entry, rel)
    result.images.sort(key=lambda r: r["path"])
    result.skipped.sort(key=lambda r: r["filename"])
    return result


def _is_dir(entry: os.DirEntry, follow: bool) -> bool:
    """is_dir that treats an unresolvable entry (symlink loop, vanished) as a file,
    so that it is recorded with its stat error instead of aborting the scan."""
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _add_file(result: ScanResult, entry: os.DirEntry, rel: str) -> None:
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError as exc:
        st = None
        err = f"cannot stat: {exc.strerror or exc}"
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not is_image_name(entry.name):
            result.skipped.append(
                {"filename": rel, "size_bytes": None, "reason": "not a regular file"}
            )
            return
        st, err = None, "not a regular file"
    if not is_image_name(entry.name):
        result.skipped.append(
            {
                "filename": rel,
                "size_bytes": st.st_size if st else None,
                "reason": "not an image extension",
            }
        )
        return
    if st is None:
        result.images.append({"path": rel, "size": -1, "mtime_ns": 0, "scan_error": err})
    else:
        result.images.append(
            {
                "path": rel,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                # A file overwritten in place and `touch -r`-ed back keeps size and
                # mtime, but not its ctime (nor its inode, when replaced by a rename).
                "ctime_ns": st.st_ctime_ns,
                "inode": st.st_ino,
            }
        )


UNLISTABLE = "cannot list directory"


def read_manifests(outdir: str | os.PathLike) -> list[dict]:
    """The entries of every shard manifest in `outdir` (those of the previous scan,
    before `write_manifests` replaces them)."""
    rows = []
    for p in sorted(Path(outdir).glob("shard-*.jsonl")):
        with open(p, encoding="ascii") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def compare_scans(previous: list[dict], images: list[dict]) -> dict[str, int]:
    """How many files are new, changed (size or mtime), removed and unchanged since
    the previous scan's manifests."""
    before = {r["path"]: (r.get("size"), r.get("mtime_ns")) for r in previous}
    counts = {"new": 0, "changed": 0, "removed": 0, "unchanged": 0}
    for r in images:
        old = before.pop(r["path"], None)
        if old is None:
            counts["new"] += 1
        else:
            counts["unchanged" if old == (r.get("size"), r.get("mtime_ns")) else "changed"] += 1
    counts["removed"] = len(before)
    return counts


def carry_unlistable(scan: ScanResult, previous: list[dict]) -> int:
    """Keep the files of directories that could not be listed this time (a folder
    made unreadable, a share that went away underneath) as errors with the reason,
    not as removals: the previous scan's entries below such a directory are put
    back with `scan_error` (their records then say why, and they keep their ids).
    Returns how many were carried."""
    unlistable = [r for r in scan.skipped if r["reason"].startswith(UNLISTABLE)]
    if not unlistable:
        return 0
    present = {r["path"] for r in scan.images}
    carried = 0
    for entry in previous:
        path = entry["path"]
        if path in present:
            continue
        for r in unlistable:
            d = r["filename"]
            if d == "." or path.startswith(d + "/"):
                scan.images.append(
                    {"path": path, "size": -1, "mtime_ns": 0, "scan_error": r["reason"]}
                )
                present.add(path)
                carried += 1
                break
    scan.images.sort(key=lambda r: r["path"])
    return carried


def shape(scan: ScanResult) -> dict:
    """How many image files the archive holds, in all and per top-level folder
    (files directly in the root are counted in all only)."""
    folders: dict[str, int] = {}
    for r in scan.images:
        top, sep, _ = r["path"].partition("/")
        if sep:
            folders[top] = folders.get(top, 0) + 1
    return {"files": len(scan.images), "folders": folders}


def write_manifests(
    scan: ScanResult, outdir: str | os.PathLike, n_shards: int, folder_files: int = 128
) -> list[int]:
    """Write `shard-NNNN.jsonl` per shard and `skipped.jsonl`; return changed shards.

    Files are only rewritten when their content changes, keeping mtimes of untouched
    shards so Snakemake leaves them alone. Shards by folder (`shard_assignment`).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    buckets: list[list[str]] = [[] for _ in range(n_shards)]
    shard = shard_assignment([rec["path"] for rec in scan.images], n_shards, folder_files)
    for rec in scan.images:
        buckets[shard[rec["path"]]].append(json.dumps(rec, ensure_ascii=True, sort_keys=True))
    changed = []
    for i, lines in enumerate(buckets):
        text = "".join(line + "\n" for line in lines)
        if write_text_if_changed(outdir / manifest_name(i), text):
            changed.append(i)
    skipped = "".join(json.dumps(r, ensure_ascii=True, sort_keys=True) + "\n" for r in scan.skipped)
    write_text_if_changed(outdir / "skipped.jsonl", skipped)
    return changed


def write_rerun_token(outdir: str | os.PathLike, new: bool, why: str = "") -> bool:
    """`rerun.json`, an input of every decode_shard job; a new token (new content)
    makes Snakemake rerun every shard job, and with it everything downstream.

    Written anew for `file_check: full` (the jobs then re-hash every file) and after a
    failed run: Snakemake gives a failed job its previous update() outputs back with
    a fresh mtime, which would look up to date and hide the change forever. Left
    alone otherwise, so going back to `quick` reruns nothing. Returns whether it
    changed.
    """
    path = Path(outdir) / "rerun.json"
    if not new and path.exists():
        return False
    token = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f" {time.time_ns()}"
    text = json.dumps({"token": token if new else None, "why": why}) + "\n"
    return write_text_if_changed(path, text)


def manifest_name(shard: int) -> str:
    """File name of a shard's manifest."""
    return f"shard-{shard:04d}.jsonl"
