"""Snakemake script: the run summary for the report."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_summary  # noqa: E402

run_summary(log=snakemake.log[0], json_dir=snakemake.input.json, tsv=snakemake.output.tsv)
