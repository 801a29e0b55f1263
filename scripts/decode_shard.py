"""Snakemake script: bring one shard's per-file records up to date."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
