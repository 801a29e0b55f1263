"""Snakemake script: put the staged deliverables in place, together."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
