# Shared settings and the archive scan.
#
# The scan runs once, in the main Snakemake process, when the workflow is parsed. It
# writes one manifest per shard, only rewriting manifests whose content changed, so the
# DAG (fixed: one job per shard) reruns exactly the shards an archive change touched.
# Jobs started by an executor (SLURM, subprocesses) never rescan. Before it writes
# anything the main process checks that the results are outside the archive, locks
# the results directory (one run at a time) and checks it belongs to this archive.

import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from archive_twins.decisions import DecisionError, read_decisions
from archive_twins.decisions import resolve_path as resolve_decisions
from archive_twins.guard import (
    GuardError,
    check_archive,
    check_paths,
    lock_results,
    results_pattern,
)
from archive_twins.scan import scan_archive, write_manifests, write_rerun_token
from archive_twins.util import DELIVERABLES

ARCHIVE = config["archive"]
# The archive for rule params, as a function so Snakemake does not format the path
# (a `{` in it would be read as a wildcard).
ARCHIVE_PARAM = lambda wildcards: ARCHIVE
RESULTS_PATH = config["results"].rstrip("/")
try:
    RESULTS = results_pattern(RESULTS_PATH)  # RESULTS_PATH, usable in rule patterns
except GuardError as exc:
    raise WorkflowError(str(exc)) from None
VERIFY = config.get("verify", "quick")
N_SHARDS = int(config["shards"])
SHARDS = [f"{i:04d}" for i in range(N_SHARDS)]
N_CHUNKS = int(config["match_chunks"])
CHUNKS = [f"{i:04d}" for i in range(N_CHUNKS)]
# What the thumbnails depend on: part of every matching verdict's cache key.
DECODE_SETTINGS = {k: config[k] for k in ("thumb_size", "thumb_quality", "max_pixels")}
DEMO_ARCHIVE = "demo/archive"
# A curator's decisions (decisions.csv): the configured file, else the results' own.
try:
    DECISIONS = resolve_decisions(config.get("decisions"), RESULTS_PATH)
except DecisionError as exc:
    raise WorkflowError(str(exc)) from None
MASTER_PATHS = config.get("master_paths") or []
MASTER_PATHS = [MASTER_PATHS] if isinstance(MASTER_PATHS, str) else list(MASTER_PATHS)


def rule_resources(name, **extra):
    """Resources of a rule from config, so profiles can map them to a scheduler."""
    res = dict(config["resources"].get(name, {}))
    res.update(extra)
    return res


if not workflow.remote_exec and not workflow.subprocess_exec:
    if ARCHIVE == DEMO_ARCHIVE and not Path(ARCHIVE).exists():
        from archive_twins.demo import build_demo_archive

        logger.info(f"creating the demo archive in {ARCHIVE}")
        build_demo_archive(ARCHIVE)
    if not Path(ARCHIVE).is_dir():
        raise WorkflowError(f"archive directory not found: {ARCHIVE}")
    try:
        check_paths(ARCHIVE, RESULTS_PATH, config["allow_results_in_archive"])
        # held until the main process exits (the handle stays referenced)
        _RESULTS_LOCK = lock_results(RESULTS_PATH)
        check_archive(RESULTS_PATH, ARCHIVE, config["allow_archive_change"])
    except GuardError as exc:
        raise WorkflowError(str(exc)) from None
    # A malformed decisions file stops the run here, before anything is written.
    try:
        read_decisions(DECISIONS) if DECISIONS else None
    except DecisionError as exc:
        raise WorkflowError(f"{exc}; nothing was changed") from None
    # The publish marker stands for complete deliverables and a complete staged set:
    # a deliverable deleted by hand, or a staged one a failed job took away, makes
    # the run rebuild and publish again (Snakemake itself would not rerun a job for
    # a missing intermediate file whose downstream output exists).
    if not all(
        Path(RESULTS_PATH, where, name).exists()
        for where in ("", "staging")
        for name in DELIVERABLES
    ):
        Path(RESULTS_PATH, "state", "published.json").unlink(missing_ok=True)
    _scan = scan_archive(
        ARCHIVE,
        follow_symlinks=config["follow_symlinks"],
        exclude=[RESULTS_PATH, ".snakemake"],
    )
    _changed = write_manifests(
        _scan, f"{RESULTS_PATH}/manifest", N_SHARDS, int(config["shard_folder_files"])
    )
    write_rerun_token(f"{RESULTS_PATH}/manifest", VERIFY == "full", "verify: full")
    logger.info(
        f"scanned {ARCHIVE}: {len(_scan.images)} image files, "
        f"{len(_scan.skipped)} skipped; {len(_changed)} of {N_SHARDS} shard manifests changed"
    )


wildcard_constraints:
    shard=r"\d{4}",
    chunk=r"\d{4}",


onerror:
    # Failed jobs got their previous update() outputs back with a fresh mtime: make
    # the next run redo every shard (unchanged files are not read again).
    write_rerun_token(f"{RESULTS_PATH}/manifest", True, "previous run failed")
