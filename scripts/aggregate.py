"""Snakemake script: aggregate shard records into archive.sqlite and json/."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
