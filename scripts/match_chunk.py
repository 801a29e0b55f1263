"""Snakemake script: verified copies among the candidates of one chunk of the index."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_match  # noqa: E402

run_match(
    log=snakemake.log[0],
    index=snakemake.input.index,
    chunk=int(snakemake.wildcards.chunk),
    n_chunks=snakemake.params.n_chunks,
    pairs=snakemake.output.pairs,
    thumbs=snakemake.params.thumbs,
    features=snakemake.params.features,
    matching=snakemake.params.matching,
    decode=snakemake.params.decode,
    feature_settings=snakemake.params.feature_settings,
    stamp=snakemake.input.stamp,
)
