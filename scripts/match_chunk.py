"""Snakemake script: verified copies among the candidates of one chunk of the index."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.jobs import run  # noqa: E402

run(snakemake)
