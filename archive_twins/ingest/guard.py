"""Checks the main Snakemake process makes before it writes anything.

The archive scan runs while the Snakefile is parsed, before Snakemake takes its own
lock, so the workflow guards its results directory itself: one run at a time
(an exclusive flock held for the main process's lifetime), one archive per results
directory, never writing (or scanning) results inside the archive, and never
taking an archive that suddenly lost many of its files (a share that did not mount)
for the archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from ..util import atomic_open, display_name, inside

# Locks taken by this process, by results directory: a second parse in the same
# process (Snakemake may parse again) must not lock itself out.
_LOCKS: dict[str, IO] = {}


class GuardError(Exception):
    """A run that must not go ahead; the message says why and what to do."""


def results_pattern(results: str) -> str:
    """The results path as used in rule patterns, which read `{...}` as a wildcard
    (Snakemake has no escape for braces): relative to the working directory when
    the braces are only above it, else a clear error before anything is written."""
    if "{" not in results and "}" not in results:
        return results
    rel = os.path.relpath(results)
    if "{" in rel or "}" in rel or rel.startswith(".."):
        raise GuardError(
            f"the results path {results} contains '{{' or '}}', which Snakemake reads as "
            "a wildcard; choose a results directory without braces (braces in the "
            "archive path, and in the working directory above the results, are fine)"
        )
    return rel


def check_paths(archive: str, results: str, allow_results_in_archive: bool) -> None:
    """Refuse results (or Snakemake's `.snakemake/` in the working directory) inside
    the archive: the archive is only read, and a run would ingest its own thumbnails."""
    real_archive = os.path.realpath(archive)
    if allow_results_in_archive:
        return
    for what, path in (
        ("results directory", results),
        ("working directory (Snakemake writes .snakemake/ there)", os.getcwd()),
    ):
        if inside(os.path.realpath(path), real_archive):
            raise GuardError(
                f"the {what} {os.path.realpath(path)} is inside the archive {real_archive}; "
                "the archive is only read. Choose results (and a working directory) "
                "outside it, or set allow_results_in_archive: true (results are then "
                "never scanned)."
            )


def lock_results(results: str) -> IO:
    """Take an exclusive lock on `{results}/.lock` for this process's lifetime.

    A second run on a busy results directory fails here, before any manifest is
    written; the lock goes away with the process, however it ends.
    """
    key = os.path.realpath(results)
    if key in _LOCKS:
        return _LOCKS[key]
    os.makedirs(results, exist_ok=True)
    fh = open(os.path.join(results, ".lock"), "a+", encoding="ascii")  # noqa: SIM115
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        raise GuardError(
            f"the results directory {key} is in use by another run"
            f"{f' (pid {holder})' if holder else ''}; nothing was changed. Wait for it "
            "to finish, or use another results directory."
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _LOCKS[key] = fh
    return fh


def recorded_archive(results: str | os.PathLike) -> str | None:
    """The archive (resolved) a results directory belongs to, if recorded."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((Path(results) / "state" / "archive.json").read_text())["archive"]
    return None


def check_archive(results: str, archive: str, allow_change: bool) -> None:
    """A results directory belongs to one archive (`{results}/state/archive.json`);
    another archive is refused unless `allow_archive_change` is set, since its files
    would get the ids and records of a different collection."""
    state = Path(results) / "state" / "archive.json"
    real_archive = os.path.realpath(archive)
    previous = recorded_archive(results)
    if previous == real_archive:
        return
    if previous is not None and not allow_change:
        raise GuardError(
            f"the results directory {os.path.realpath(results)} holds results of the "
            f"archive {previous}, not of {real_archive}; nothing was changed. Use another "
            "results directory, or set allow_archive_change: true to switch it."
        )
    with atomic_open(state, "w", encoding="utf-8") as fh:
        json.dump({"archive": real_archive}, fh, ensure_ascii=False)
        fh.write("\n")


def check_shrink(previous: dict | None, now: dict, max_share: float, allow: bool) -> None:
    """Refuse a scan that lost more than `max_share` of the image files of the
    previous accepted scan (`scan.shape`), or every file of a top-level folder,
    unless `allow`: an archive on a share that did not mount looks empty, and would
    otherwise be published as current."""
    if previous is None or allow:
        return
    before, after = int(previous.get("files", 0)), int(now["files"])
    folders = previous.get("folders", {})
    gone = sorted(f for f, n in folders.items() if n and f not in now["folders"])
    lost = before - after
    if not gone and not (before and lost > max_share * before):
        return
    what = f"{after} image files where the last run saw {before}"
    if gone:
        names = ", ".join(display_name(f) for f in gone[:5])
        more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
        what += f"; top-level folders now empty or missing: {names}{more}"
    raise GuardError(
        f"the archive holds {what}; nothing was changed (is it mounted?). If the files "
        "were removed on purpose, run again with --config allow_shrink=True."
    )
