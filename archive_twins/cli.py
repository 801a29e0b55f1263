"""Entry points called by the thin Snakemake scripts in scripts/."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from . import __version__

# Each rule imports only what it uses (duckdb, libvips, OpenCV, scipy): a job's
# start-up is part of every rerun's cost.


def _logging(logfile: str) -> logging.Logger:
    logging.basicConfig(
        filename=logfile,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    return logging.getLogger("archive_twins")


def run_decode_shard(smk: Any) -> None:
    """Rule decode_shard: per-file records, then features of new rasters.

    Logs machine-readable STATS (decode) and FEATURES lines for rerun accounting.
    """
    from .decode import DecodeParams
    from .features import FeatureParams, run_features_shard
    from .shard import process_shard

    log = _logging(smk.log[0])
    params = DecodeParams(
        thumb_size=int(smk.params.thumb_size),
        thumb_quality=int(smk.params.thumb_quality),
        max_pixels=int(smk.params.max_pixels),
    )
    t0 = time.perf_counter()
    stats = process_shard(
        smk.input.manifest,
        smk.output.records,
        smk.params.archive,
        smk.params.store,
        params,
        # from the config, not a rule param: switching back to `quick` must not make
        # Snakemake rerun every job (a `full` run forces the reruns through the
        # manifest/rerun.json input)
        full=smk.config.get("verify", "quick") == "full",
    )
    summary = dict(vars(stats))
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("STATS %s", json.dumps(summary, sort_keys=True))
    t1 = time.perf_counter()
    fparams = FeatureParams(
        max_side=int(smk.params.feature_max_side),
        n_features=int(smk.params.n_features),
        thumbs=params.fingerprint(),
    )
    fstats = run_features_shard(
        smk.output.records,
        smk.output.features,
        smk.params.store,
        fparams,
        Path(smk.output.features).parent,
        enabled=bool(smk.params.geometric),
    )
    fstats["seconds"] = round(time.perf_counter() - t1, 3)
    log.info("FEATURES %s", json.dumps(fstats, sort_keys=True))


def run_aggregate(smk: Any) -> None:
    """Rule aggregate."""
    from .aggregate import aggregate

    log = _logging(smk.log[0])
    t0 = time.perf_counter()
    info = {
        "version": __version__,
        "archive": str(smk.params.archive),
        "shards": str(smk.params.shards),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tables = aggregate(
        list(smk.input.records),
        smk.input.skipped,
        smk.output.registry,
        smk.output.sqlite,
        smk.output.json,
        info,
        list(smk.input.pairs),
    )
    counts = {name: len(rows) for name, rows in tables.items()}
    log.info("tables %s", json.dumps(counts, sort_keys=True))
    log.info("done in %.2f s", time.perf_counter() - t0)


def _retrieval(matching: dict) -> Any:
    from .settings import retrieval_params

    return retrieval_params(matching)


def run_index(smk: Any) -> None:
    """Rule index: one item per distinct raster and the inverted file of words."""
    from .retrieval import build_index

    log = _logging(smk.log[0])
    t0 = time.perf_counter()
    stats = build_index(
        list(smk.input.records),
        list(smk.input.signatures),
        smk.output.index,
        _retrieval(smk.params.matching),
        smk.params.generations,
    )
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("STATS %s", json.dumps(stats, sort_keys=True))


def run_match(smk: Any) -> None:
    """Rule match_chunk."""
    from .features import FeatureParams
    from .match import run_match_chunk
    from .settings import match_params

    log = _logging(smk.log[0])
    t0 = time.perf_counter()
    from .decode import DecodeParams

    decode = DecodeParams(**{k: int(v) for k, v in dict(smk.params.decode).items()})
    fparams = FeatureParams(
        max_side=int(smk.params.feature_settings["max_side"]),
        n_features=int(smk.params.feature_settings["n_features"]),
        thumbs=decode.fingerprint(),
    )
    params = match_params(
        smk.params.matching,
        {"decode": decode.fingerprint(), "features": fparams.fingerprint()},
    )
    stats = run_match_chunk(
        smk.input.index,
        int(smk.wildcards.chunk),
        int(smk.params.n_chunks),
        smk.output.pairs,
        smk.params.thumbs,
        smk.params.features,
        params,
        fparams.fingerprint(),
    )
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("STATS %s", json.dumps(stats, sort_keys=True))


def run_publish(smk: Any) -> None:
    """Rule publish: staged archive.sqlite, json/ and html/ replace the deliverables
    together; the marker records what was published."""
    from .util import DELIVERABLES, atomic_open, publish

    log = _logging(smk.log[0])
    staging = Path(smk.input.sqlite).parent
    results = staging.parent
    publish(staging, results, DELIVERABLES)
    with atomic_open(smk.output.marker, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "deliverables": list(DELIVERABLES),
            },
            fh,
        )
    log.info("published %s from %s", ", ".join(DELIVERABLES), staging)


def run_html(smk: Any) -> None:
    """Rule html."""
    from .html import build_html

    log = _logging(smk.log[0])
    counts = build_html(smk.input.json, smk.output.html, smk.params.archive)
    log.info("pages %s", json.dumps(counts, sort_keys=True))


def run_summary(smk: Any) -> None:
    """Rule summary."""
    from .report import write_summary

    log = _logging(smk.log[0])
    n = write_summary(smk.input.json, smk.output.tsv)
    log.info("summary rows %d", n)
