"""Snakemake script: the review pages with their thumbnails, for the report."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_report_pages  # noqa: E402

run_report_pages(
    log=snakemake.log[0],
    html=snakemake.params.html,
    thumbs=snakemake.params.thumbs,
    pages=snakemake.output.pages,
)
