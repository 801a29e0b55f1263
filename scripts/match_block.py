"""Snakemake script: verified copies between two blocks of shards."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_match  # noqa: E402

run_match(snakemake)
