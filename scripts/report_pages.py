"""Snakemake script: the review pages with their thumbnails, for the report."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
