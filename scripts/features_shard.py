"""Snakemake script: RootSIFT features of one shard's thumbnails (cached)."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_features  # noqa: E402

run_features(snakemake)
