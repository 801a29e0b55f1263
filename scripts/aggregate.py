"""Snakemake script: aggregate shard records into archive.sqlite and json/."""

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

from archive_twins.cli import run_aggregate  # noqa: E402

run_aggregate(
    log=snakemake.log[0],
    records=list(snakemake.input.records),
    skipped=snakemake.input.skipped,
    pairs=list(snakemake.input.pairs),
    sqlite=snakemake.output.sqlite,
    json_dir=snakemake.output.json,
    csv_dir=snakemake.output.csv,
    decisions=snakemake.input.decisions[0] if snakemake.input.decisions else None,
    master_paths=list(snakemake.params.master_paths),
    registry=snakemake.output.registry,
    archive=snakemake.params.archive,
    shards=snakemake.params.shards,
    stamp=snakemake.input.stamp,
)
