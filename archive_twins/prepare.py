"""What the main Snakemake process does, after its guards, before the DAG is built.

Takes the archive, the results directory and the config; gives the manifests the
DAG depends on and the stamps that force the jobs whose outputs are not what they
must be (see `ledger`), after removing killed jobs' temporaries, refusing an archive
that lost many of its files (see `guard.check_shrink`) and mending a lost id
registry. Returns lines for the log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import ledger, versions
from .deliver import publish
from .deliver.decisions import resolve_path as resolve_decisions
from .ingest import registry
from .ingest.guard import check_shrink
from .ingest.leftovers import remove_leftovers
from .ingest.scan import (
    UNLISTABLE,
    ScanResult,
    carry_unlistable,
    compare_scans,
    read_manifests,
    scan_archive,
    shape,
    write_manifests,
    write_rerun_token,
)
from .progress import parse_stats, work_estimate
from .util import DELIVERABLES, file_check, write_text_if_changed

SHAPE = "state/shape.json"


def prepare(
    archive: str,
    results: str,
    config: dict,
    shards: list[str],
    chunks: list[str],
    cores: int = 1,
) -> list[str]:
    """Scan, guard and write what the DAG reads; raises guard.GuardError to refuse.
    Returns notes for the user: what changed since the last run, a rough estimate of
    the work (on `cores`), what was repaired or is rerun and why."""
    res = Path(results)
    notes = []
    removed = remove_leftovers(res)
    if removed is None:
        notes.append(
            "jobs of an earlier run on these results are still running: their "
            "temporaries are left alone"
        )
    elif removed:
        notes.append(f"removed {len(removed)} temporaries of killed jobs ({removed[0]}, ...)")
    scan = scan_archive(archive, config["follow_symlinks"], exclude=[results, ".snakemake"])
    manifests = res / "manifest"
    reference = _read(res / SHAPE)
    unlistable = any(r["reason"].startswith(UNLISTABLE) for r in scan.skipped)
    last_scan = read_manifests(manifests)
    previous = last_scan if unlistable or reference is None else []
    if (carried := carry_unlistable(scan, previous)) > 0:
        notes.append(f"{carried} files in folders that cannot be listed are kept as errors")
    counts = compare_scans(last_scan, scan.images)
    notes.append("files since the last run: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    todo = counts["new"] + counts["changed"]
    history = decode_history(res)  # every decode log's last STATS line: read once
    estimate = work_estimate(todo, cores, history)
    notes.append(estimate)
    if reference is None and previous:
        reference = shape(ScanResult(images=previous))
    now = shape(scan)
    check_shrink(reference, now, float(config["max_shrink"]), bool(config["allow_shrink"]))
    write_text_if_changed(res / SHAPE, json.dumps(now, sort_keys=True))
    # A deliverable deleted by hand, or a staged one a failed job took away, makes
    # the run rebuild and publish again (Snakemake itself would not rerun a job for
    # a missing intermediate file whose downstream output exists).
    marker = res / "state" / "published.json"
    if not all((res / w / n).exists() for w in ("", "staging") for n in DELIVERABLES):
        marker.unlink(missing_ok=True)
    changed = write_manifests(scan, manifests, len(shards), int(config["shard_folder_files"]))
    write_rerun_token(manifests, file_check(config) == "full", "file_check: full")
    notes.insert(
        0,
        f"scanned {archive}: {len(scan.images)} image files, {len(scan.skipped)} skipped; "
        f"{len(changed)} of {len(shards)} shard manifests changed",
    )
    if not scan.images:
        notes.insert(
            1,
            f"warning: the archive {archive} holds no image files "
            f"({len(scan.skipped)} other entries skipped): the results will be empty",
        )
    # a lost or damaged id registry is noticed (and mended) by every run
    if note := registry.ensure(res / "state" / "file_ids.json", res / "archive.sqlite"):
        notes.append(note)
    jobs = plan(res, archive, config, shards, chunks)
    ledger.remove_other_jobs(res, jobs)
    forced = ledger.check(res, jobs)
    redo = sorted(j.removeprefix("decode_shard-") for j in forced if j.startswith("decode_shard-"))
    if redo:
        # shard jobs rerun for their settings, the per-file code's version or damaged
        # outputs: their files count as work too (an upgrade decodes every file again)
        files = sum(_entries(manifests / f"shard-{s}.jsonl") for s in redo)
        notes[notes.index(estimate)] = (
            work_estimate(max(todo, files), cores, history)
            + f"; {len(redo)} shard jobs run again (settings, code version or damaged outputs)"
        )
    by_why: dict[str, list[str]] = {}
    for job, why in sorted(forced.items()):
        by_why.setdefault(why, []).append(job)
    for why, names in by_why.items():
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        notes.append(f"rerun {', '.join(names[:4])}{more}: {why}")
    built_from = {k: jobs[k][0] for k in ("aggregate", "html")}
    record = publish.current_record(res) or {}
    if {k: record.get(k) for k in built_from} != built_from and marker.exists():
        notes.append("the published results were built from other inputs: publish again")
        marker.unlink()
    return notes


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def plan(
    results: Path, archive: str, config: dict, shards: list[str], chunks: list[str]
) -> dict[str, tuple[str, list[str]]]:
    """Each job's `want` (what its outputs must be built from: manifests, the jobs
    before it, settings) and its outputs, as the rules in rules/*.smk declare them."""
    manifests = results / "manifest"
    real_archive = os.path.realpath(archive)
    decode = {k: config[k] for k in ("thumb_size", "thumb_quality", "max_pixels", "features")}
    decode["geometric"] = config["matching"]["geometric"]
    # a new version of the per-file code reruns the shard jobs (which then redo the
    # records and signatures whose fingerprints it changes, and only those)
    decode["versions"] = [versions.DECODE, versions.FEATURES]
    jobs: dict[str, tuple[str, list[str]]] = {}
    dec = {}
    for s in shards:
        dec[s] = ledger.digest(
            ["decode_shard", ledger.file_crc(manifests / f"shard-{s}.jsonl"), decode]
        )
        jobs[f"decode_shard-{s}"] = (dec[s], [f"shards/shard-{s}.jsonl", f"features/shard-{s}.npz"])
    index = ledger.digest(["index", dec, config["matching"]])
    jobs["index"] = (index, ["index"])
    match = {}
    for c in chunks:
        match[c] = ledger.digest(["match_chunk", c, len(chunks), index, config["matching"], decode])
        jobs[f"match_chunk-{c}"] = (match[c], [f"pairs/chunk-{c}.jsonl"])
    skipped = ledger.file_crc(manifests / "skipped.jsonl")
    # a curator's decisions.csv (its bytes) and master_paths decide the tables too
    decisions = resolve_decisions(config.get("decisions"), results)
    review = [ledger.file_crc(decisions) if decisions else None, config.get("master_paths")]
    aggregate = ledger.digest(["aggregate", dec, match, skipped, real_archive, review])
    jobs["aggregate"] = (aggregate, ["staging/archive.sqlite", "staging/json", "staging/csv"])
    jobs["html"] = (ledger.digest(["html", aggregate, real_archive]), ["staging/html"])
    return jobs


def _entries(manifest: Path) -> int:
    """Files listed in a shard manifest (0 when it is gone)."""
    try:
        with open(manifest, encoding="ascii") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def decode_history(results: Path) -> list[dict]:
    """The STATS lines of the decode jobs' logs (each job's last)."""
    out = []
    for log in (results / "logs" / "decode_shard").glob("*.log"):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        stats = (parse_stats(line) for line in reversed(lines))
        if (last := next((s for s in stats if s is not None), None)) is not None:
            out.append(last)
    return out
