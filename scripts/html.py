"""Snakemake script: static review pages from the JSON deliverable."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_html  # noqa: E402

run_html(
    log=snakemake.log[0],
    json_dir=snakemake.input.json,
    html=snakemake.output.html,
    archive=snakemake.params.archive,
    stamp=snakemake.input.stamp,
)
