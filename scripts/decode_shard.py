"""Snakemake script: bring one shard's per-file records up to date."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_decode_shard  # noqa: E402
from archive_twins.util import file_check  # noqa: E402

run_decode_shard(
    log=snakemake.log[0],
    manifest=snakemake.input.manifest,
    records=snakemake.output.records,
    features=snakemake.output.features,
    archive=snakemake.params.archive,
    store=snakemake.params.store,
    thumb_size=snakemake.params.thumb_size,
    thumb_quality=snakemake.params.thumb_quality,
    max_pixels=snakemake.params.max_pixels,
    geometric=snakemake.params.geometric,
    feature_max_side=snakemake.params.feature_max_side,
    n_features=snakemake.params.n_features,
    full=file_check(snakemake.config) == "full",
    threads=snakemake.threads,
    stamp=snakemake.input.stamp,
)
