"""Snakemake script: the candidate index over every shard."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_index  # noqa: E402

run_index(snakemake)
