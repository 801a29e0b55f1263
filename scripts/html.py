"""Snakemake script: static review pages from the JSON deliverable."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
