"""The `archive-twins` command: takes an archive or a results directory, gives a run
of the workflow shipped with the package, its progress, or its overview page.

    archive-twins run ARCHIVE [--results DIR] [--cores N] [--profile local|slurm] [-- ARGS]
    archive-twins status DIR
    archive-twins open DIR

`run` starts Snakemake on the package's own Snakefile from any working directory
(`snakemake --cores N` in the checkout keeps working as before); `status` reads the
job logs (PROGRESS and STATS lines) and the run note (state/run.json).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path

from .deliver.report import summary_block
from .progress import format_eta, parse_progress, parse_stats

PROFILES = ("local", "slurm")
OVERVIEW = "html/index.html"


class ConsoleError(Exception):
    """A problem the user can fix; the message says how."""


def workflow_dir() -> Path:
    """The directory of the Snakefile shipped with this package: the checkout it was
    installed from (`pip install -e .`, the README's `make demo`), else the copy
    `pip install .` put in the package (archive_twins/workflow, pyproject.toml)."""
    package = Path(__file__).resolve().parent
    for where in (package.parent, package / "workflow"):
        if (where / "Snakefile").is_file():
            return where
    raise ConsoleError(
        f"the workflow files (Snakefile, rules/) are not installed with the package in "
        f"{package}: install it again from a checkout (`pip install .`)"
    )


def snakemake_command(
    archive: str,
    results: str,
    cores: str,
    profile: str | None,
    extra: list[str],
) -> list[str]:
    """The Snakemake command line `run` executes (absolute paths: any working dir)."""
    wf = workflow_dir()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(wf / "Snakefile")]
    cmd += ["--cores", str(cores)]
    if profile:
        cmd += ["--profile", str(wf / "profiles" / profile)]
    paths = [f"archive={os.path.abspath(archive)}", f"results={os.path.abspath(results)}"]
    cmd += ["--config", *paths]
    return cmd + extra


def overview_page(results: str | os.PathLike) -> Path:
    """The overview page of a results directory (ConsoleError when not built yet)."""
    page = Path(results).absolute() / OVERVIEW
    if not page.is_file():
        raise ConsoleError(
            f"no overview page in {Path(results).absolute()} (not a results directory, "
            "or no run finished there yet): run `archive-twins run ARCHIVE --results DIR`"
        )
    return page


@dataclass
class Status:
    """What the job logs of a results directory say about its last run."""

    state: str = "unknown"
    files_total: int = 0
    files_done: int = 0
    errors: int = 0
    shards_total: int = 0
    shards_done: int = 0
    chunks_total: int = 0
    chunks_done: int = 0
    rate: float | None = None  # files per second since the run started
    eta_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report `status` prints."""
        rate = "?" if self.rate is None else f"{self.rate:.1f} files/s"
        out = [
            f"run: {self.state}",
            f"files decoded: {self.files_done} of {self.files_total} "
            f"({self.shards_done} of {self.shards_total} shards done), rate {rate}, "
            f"ETA {format_eta(self.eta_s) if self.state == 'running' else '-'}",
            f"matching chunks done: {self.chunks_done} of {self.chunks_total}",
            f"errors so far: {self.errors}",
        ]
        return out + self.notes


def _last_lines(log: Path) -> tuple[dict | None, dict | None]:
    """The last PROGRESS fields and the last STATS fields of a job log."""
    progress = stats = None
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, None
    for line in text.splitlines():
        p = parse_progress(line)
        if p is not None:
            progress, stats = p, None  # a STATS line before it was an earlier run's
            continue
        if (s := parse_stats(line)) is not None:
            stats = s
    return progress, stats


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(results: str | os.PathLike, now: float | None = None) -> Status:
    """The progress of the run in `results` from its job logs and run note."""
    from .ingest.leftovers import read_run_state

    results = Path(results)
    if not (results / "manifest").is_dir():
        raise ConsoleError(
            f"{results.absolute()} is not a results directory of archive-twins (no manifest/)"
        )
    now = time.time() if now is None else now
    st = Status()
    try:
        note = read_run_state(results)
    except (OSError, ValueError):
        note = {}
    started = note.get("started")
    st.state = note.get("state", "unknown")
    if st.state == "running" and not _pid_alive(int(note.get("pid", 0))):
        st.state = "stopped (the run was killed or crashed; run it again to resume)"
    manifests = sorted((results / "manifest").glob("shard-*.jsonl"))
    st.shards_total = len(manifests)
    # a shard is done when its records are newer than what they are built from (as
    # Snakemake decides): unchanged shards of a rerun count as done from the start
    token = results / "manifest" / "rerun.json"
    since = token.stat().st_mtime_ns if token.exists() else 0
    done_now = 0  # files gone through in this run (for the rate)
    for m in manifests:
        with m.open("rb") as fh:
            total = sum(1 for _ in fh)
        st.files_total += total
        log = results / "logs" / "decode_shard" / (m.stem.removeprefix("shard-") + ".log")
        fresh = started is None or (log.exists() and log.stat().st_mtime >= started)
        progress, stats = _last_lines(log)
        out = results / "shards" / m.name
        if out.exists() and out.stat().st_mtime_ns >= max(m.stat().st_mtime_ns, since):
            st.shards_done += 1
            st.files_done += total
            st.errors += int(stats.get("errors", 0)) if stats else 0
            done_now += total if fresh else 0
        elif progress is not None and fresh:
            st.files_done += int(progress.get("done", 0))
            done_now += int(progress.get("done", 0))
    stamps = list((results / "state" / "stamps").glob("match_chunk-*.json"))
    st.chunks_total = len(stamps)
    for s in stamps:
        log = results / "logs" / "match_chunk" / (s.stem.removeprefix("match_chunk-") + ".log")
        fresh = started is None or (log.exists() and log.stat().st_mtime >= started)
        if _last_lines(log)[1] is not None and (fresh or st.state == "finished"):
            st.chunks_done += 1
    end = note.get("ended", now) if st.state == "finished" else now
    if started is not None and end > started and done_now:
        st.rate = done_now / (end - started)
        left = st.files_total - st.files_done
        st.eta_s = left / st.rate if st.rate > 0 else None
    if st.state == "finished":
        st.notes += summary_block(results)
    return st


def _can_open_browser() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `archive-twins` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="archive-twins",
        description="Find identical images, same-pixel files and copies in an image archive.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the workflow on ARCHIVE (extra Snakemake args after --)")
    run.add_argument("archive")
    run.add_argument("--results", default="results", help="output directory (default: results)")
    run.add_argument("--cores", default="all", help="cores to use (default: all)")
    run.add_argument("--profile", choices=PROFILES, help="local: resume after a crash; slurm")
    status = sub.add_parser("status", help="progress of a running or finished run")
    status.add_argument("results")
    opn = sub.add_parser("open", help="print (and open in a browser) the overview page")
    opn.add_argument("results")
    opn.add_argument("--no-browser", action="store_true", help="only print the path")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            cmd = snakemake_command(args.archive, args.results, args.cores, args.profile, extra)
            code = subprocess.call(cmd)
            if code == 0:
                try:
                    print(f"overview page: {overview_page(args.results)}")
                except ConsoleError:
                    pass  # e.g. --dry-run
            return code
        if args.command == "status":
            print("\n".join(read_status(args.results).lines()))
            return 0
        page = overview_page(args.results)
        print(page)
        if not args.no_browser and _can_open_browser():
            webbrowser.open(page.as_uri())
        return 0
    except ConsoleError as exc:
        print(f"archive-twins: {exc}", file=sys.stderr)
        return 2
