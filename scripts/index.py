"""Snakemake script: the candidate index over every shard."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_index  # noqa: E402

run_index(
    log=snakemake.log[0],
    records=list(snakemake.input.records),
    signatures=list(snakemake.input.signatures),
    index=snakemake.output.index,
    matching=snakemake.params.matching,
    generations=snakemake.params.generations,
    stamp=snakemake.input.stamp,
)
