# Shared settings and the archive scan.
#
# The scan runs once, in the main Snakemake process, when the workflow is parsed. It
# writes one manifest per shard, only rewriting manifests whose content changed, so the
# DAG (fixed: one job per shard) reruns exactly the shards an archive change touched.
# Jobs started by an executor (SLURM, subprocesses) never rescan. Before it writes
# anything the main process checks that the results are outside the archive, locks
# the results directory (one run at a time) and checks it belongs to this archive;
# then (archive_twins/prepare.py) it removes killed jobs' temporaries, refuses an
# archive that lost many files, and writes each job's stamp
# ({results}/state/stamps/<job>.json, an input of the job), which forces the jobs
# whose outputs are not what they must be built from (archive_twins/ledger.py).

import sys
import time
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from archive_twins.configcheck import archive_problem
from archive_twins.deliver.decisions import DecisionError, read_decisions
from archive_twins.deliver.decisions import resolve_path as resolve_decisions
from archive_twins.ingest.guard import (
    GuardError,
    check_archive,
    check_paths,
    lock_results,
    results_pattern,
)
from archive_twins.ledger import adopt_touches
from archive_twins.ingest.leftovers import mark_run
from archive_twins.prepare import prepare
from archive_twins.deliver.report import summary_block
from archive_twins.ingest.scan import write_rerun_token

ARCHIVE = config["archive"]
# The archive for rule params, as a function so Snakemake does not format the path
# (a `{` in it would be read as a wildcard).
ARCHIVE_PARAM = lambda wildcards: ARCHIVE
RESULTS_PATH = config["results"].rstrip("/")
try:
    RESULTS = results_pattern(RESULTS_PATH)  # RESULTS_PATH, usable in rule patterns
except GuardError as exc:
    raise WorkflowError(str(exc)) from None
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
RUN_STARTED_NS = time.time_ns()
try:
    RUN_CORES = int(workflow.cores)  # for the start's work estimate
except (WorkflowError, TypeError, ValueError):
    RUN_CORES = 1  # `--report`, `--lint` and the like give no --cores


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
    if _problem := archive_problem(ARCHIVE):
        raise WorkflowError(_problem)
    try:
        check_paths(ARCHIVE, RESULTS_PATH, config["allow_results_in_archive"])
        # held until the main process exits (the handle stays referenced)
        _RESULTS_LOCK = lock_results(RESULTS_PATH)
        check_archive(RESULTS_PATH, ARCHIVE, config["allow_archive_change"])
        # A malformed decisions file stops the run here, before anything is written.
        if DECISIONS:
            read_decisions(DECISIONS)
        for _line in prepare(ARCHIVE, RESULTS_PATH, config, SHARDS, CHUNKS, RUN_CORES):
            (logger.warning if _line.startswith("warning:") else logger.info)(_line)
    except GuardError as exc:
        raise WorkflowError(str(exc)) from None
    except DecisionError as exc:
        raise WorkflowError(f"{exc}; nothing was changed") from None


def stamp(job):
    """The stamp input of a job (`job` may hold a {wildcard})."""
    return f"{RESULTS}/state/stamps/{job}.json"


wildcard_constraints:
    shard=r"\d{4}",
    chunk=r"\d{4}",


onstart:
    # temporaries of a run that does not finish are swept by the next (leftovers.py)
    mark_run(RESULTS_PATH, "running")


onsuccess:
    adopt_touches(RESULTS_PATH, RUN_STARTED_NS)
    mark_run(RESULTS_PATH, "finished")
    for _line in summary_block(RESULTS_PATH):
        logger.info(_line)


onerror:
    # Failed jobs got their previous update() outputs back with a fresh mtime: make
    # the next run redo every shard (unchanged files are not read again). Not needed
    # for correctness (each job's record, archive_twins/ledger.py, shows it was not
    # redone), so a full disk here is only a warning.
    try:
        write_rerun_token(f"{RESULTS_PATH}/manifest", True, "previous run failed")
    except OSError as exc:
        logger.warning(
            f"could not note the failed run ({exc}); the next run redoes it anyway"
        )
