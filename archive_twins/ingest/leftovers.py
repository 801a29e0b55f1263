"""Temporaries of killed jobs: removed on the next run, never a running job's.

Takes a results directory; gives it back without the temporary files and
directories that jobs killed mid-write left (every output is written beside its
place under a dot-name and renamed in: `.<name>.XXXXXXXX.tmp`, `.<name>.XXXXXXXX/`,
`.aggregate-XXXXXXXX/`, ...).

Every job holds a shared lock on `{results}/.jobs.lock` while it runs (taken when it
starts, `hold_job_lock`; released by the kernel however the job ends). The main
process, which already holds the results directory's own lock (one run at a time,
`guard.lock_results`), removes temporaries only when it can take that lock
exclusively, i.e. when no job of this results directory is running anywhere (a job
of a run whose main process died may still be), and only in this results
directory. The content stores (`thumbs/`, `features/by-content/`: a directory per
two hex digits, hundreds of thousands of entries) are swept only after a run that
did not finish (`state/run.json`), or when a sweep had to be left for later
(`state/sweep-pending`), so a normal run lists a dozen directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import IO

from ..util import atomic_open, remove_path

# the logger keeps the name it had before the stage packages (job logs unchanged)
log = logging.getLogger("archive_twins.leftovers")

JOBS_LOCK = ".jobs.lock"
RUN_STATE = "state/run.json"
PENDING = "state/sweep-pending"

# What the workflow's writers name their temporaries (tempfile's random part is 8
# characters of [a-z0-9_]): atomic_open, write_sqlite, atomic_dir / mkdtemp, duckdb's
# spill directory, and the renames of publishing (these and an older version's).
_TEMP = re.compile(
    r"^\.(?:"
    r".+\.tmp"
    r"|.+\.[a-z0-9_]{8}"
    r"|aggregate-[a-z0-9_]{8}"
    r"|(?:archive\.sqlite|json|html)\.(?:publish|old)"
    r")$"
)
# Directories writers put temporaries in (relative to results), and the content
# stores' parents, whose two-hex-digit subdirectories hold temporaries too.
_DIRS = (
    "",
    "shards",
    "features",
    "pairs",
    "staging",
    "state",
    "state/index-generations",
    "state/built",
    "state/stamps",
    "manifest",
    "generations",
    "report",
)
_STORES = ("thumbs", "features/by-content")

_HELD: dict[str, IO] = {}


def hold_job_lock(results: str | os.PathLike) -> None:
    """In a job: hold a shared lock on `{results}/.jobs.lock` until the process ends,
    so the next run leaves this job's temporaries alone."""
    key = os.path.realpath(results)
    if key in _HELD:
        return
    try:
        fh = open(os.path.join(results, JOBS_LOCK), "a+b")  # noqa: SIM115 (held)
        fcntl.flock(fh, fcntl.LOCK_SH)
    except OSError as exc:  # a filesystem without locks: nothing is swept then
        log.warning("cannot lock %s: %s", os.path.join(results, JOBS_LOCK), exc)
        return
    _HELD[key] = fh


def mark_run(results: str | os.PathLike, state: str) -> None:
    """Note that a run started working ('running') or finished ('finished'), and
    when (`archive-twins status` measures the rate from the start)."""
    note = {"state": state, "pid": os.getpid(), "started": time.time()}
    if state != "running":
        with contextlib.suppress(OSError, ValueError, KeyError):
            note["started"] = read_run_state(results)["started"]
        note["ended"] = time.time()
    with contextlib.suppress(OSError):
        with atomic_open(Path(results) / RUN_STATE, "w", encoding="utf-8") as fh:
            json.dump(note, fh)


def read_run_state(results: str | os.PathLike) -> dict:
    """What `mark_run` last noted (OSError / ValueError when nothing readable)."""
    return json.loads((Path(results) / RUN_STATE).read_text(encoding="utf-8"))


def _finished(results: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((results / RUN_STATE).read_text())["state"] == "finished"
    return False


def remove_leftovers(results: str | os.PathLike) -> list[str] | None:
    """Remove the temporaries of this results directory's killed jobs; None (and
    nothing removed) while a job of this results directory is still running.
    Returns what was removed (relative paths)."""
    results = Path(results)
    if not results.is_dir():
        return []
    try:
        fh = open(results / JOBS_LOCK, "a+b")  # noqa: SIM115
    except OSError:
        return None
    pending = results / PENDING
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            with contextlib.suppress(OSError):
                pending.parent.mkdir(parents=True, exist_ok=True)
                pending.touch()
            return None
        dirs = [results / d for d in _DIRS]
        deep = not _finished(results) or pending.exists()
        if deep:
            for store in _STORES:
                with contextlib.suppress(OSError):
                    dirs += [p for p in (results / store).iterdir() if p.is_dir()]
        removed = []
        for d in dirs:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                if _TEMP.match(e.name):
                    remove_path(Path(e.path))
                    removed.append(os.path.relpath(e.path, results))
        if deep:
            pending.unlink(missing_ok=True)
        return removed
