# Shared settings and the archive scan.
#
# The scan runs once, in the main Snakemake process, when the workflow is parsed. It
# writes one manifest per shard, only rewriting manifests whose content changed, so the
# DAG (fixed: one job per shard) reruns exactly the shards an archive change touched.
# Jobs started by an executor (SLURM, subprocesses) never rescan.

import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from archive_twins.scan import scan_archive, write_manifests

ARCHIVE = config["archive"]
RESULTS = config["results"].rstrip("/")
N_SHARDS = int(config["shards"])
SHARDS = [f"{i:04d}" for i in range(N_SHARDS)]
N_CHUNKS = int(config["match_chunks"])
CHUNKS = [f"{i:04d}" for i in range(N_CHUNKS)]
# What the thumbnails depend on: part of every matching verdict's cache key.
DECODE_SETTINGS = {k: config[k] for k in ("thumb_size", "thumb_quality", "max_pixels")}
DEMO_ARCHIVE = "demo/archive"


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
    _scan = scan_archive(ARCHIVE, follow_symlinks=config["follow_symlinks"])
    _changed = write_manifests(_scan, f"{RESULTS}/manifest", N_SHARDS)
    logger.info(
        f"scanned {ARCHIVE}: {len(_scan.images)} image files, "
        f"{len(_scan.skipped)} skipped; {len(_changed)} of {N_SHARDS} shard manifests changed"
    )


wildcard_constraints:
    shard=r"\d{4}",
    chunk=r"\d{4}",
