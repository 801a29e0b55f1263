"""Snakemake script: bring one shard's per-file records up to date."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_decode_shard  # noqa: E402

run_decode_shard(snakemake)
