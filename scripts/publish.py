"""Snakemake script: put the staged deliverables in place, together."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_publish  # noqa: E402

run_publish(log=snakemake.log[0], sqlite=snakemake.input.sqlite, marker=snakemake.output.marker)
