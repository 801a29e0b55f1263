"""Entry points of the Snakemake jobs: the scripts in scripts/ call them through
`jobs.run`, whose `JOBS` table says where each keyword comes from.

Each job holds the results directory's job lock while it runs (its temporaries are
then never taken for a killed job's), checks its own previous outputs against its
record before reading them, and records what it wrote when it succeeded (`stamp`,
see ledger.py; None when called outside the workflow).
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .ingest.decode import DecodeParams
    from .ingest.features import FeatureParams

# Each rule imports only what it uses (duckdb, libvips, OpenCV, scipy): a job's
# start-up is part of every rerun's cost.


def _cpu_seconds() -> float:
    """CPU time (user + system) of this job's process so far, start-up included:
    the figure benchmarks compare, since wall time depends on who shares the cores."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return round(ru.ru_utime + ru.ru_stime, 3)


@contextmanager
def _stats_line(logger: logging.Logger, label: str, cpu: bool = False) -> Iterator[dict]:
    """The dict a job step fills with its figures, logged as one `LABEL {json}` line
    (the benchmarks read them) with the step's seconds, and the job's CPU seconds
    so far when `cpu`."""
    out: dict = {}
    t0 = time.perf_counter()
    yield out
    out["seconds"] = round(time.perf_counter() - t0, 3)
    if cpu:
        out["cpu_seconds"] = _cpu_seconds()
    logger.info("%s %s", label, json.dumps(out, sort_keys=True))


def _logging(logfile: str) -> logging.Logger:
    from .ingest.leftovers import hold_job_lock

    # a job's log is {results}/logs/<rule>/<name>.log
    parents = Path(logfile).absolute().parents
    if len(parents) > 2 and parents[1].name == "logs":
        hold_job_lock(parents[2])
    logging.basicConfig(
        filename=logfile,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    return logging.getLogger("archive_twins")


def run_decode_shard(
    *,
    log: str,
    manifest: str,
    records: str,
    features: str,
    archive: str,
    store: str,
    thumb_size: int,
    thumb_quality: int,
    max_pixels: int,
    geometric: bool,
    feature_max_side: int,
    n_features: int,
    full: bool,
    threads: int = 1,
    stamp: str | None = None,
) -> None:
    """Rule decode_shard: per-file records, then features of new rasters.

    `full` comes from the config, not a rule param: switching back to `quick` must
    not make Snakemake rerun every job (a `full` run forces the reruns through the
    manifest/rerun.json input). Logs machine-readable STATS (decode) and FEATURES
    lines for rerun accounting. The libraries use the rule's `threads` (jobenv).
    """
    from .ingest.features import run_features_shard
    from .ingest.shard import process_shard, repair_content
    from .jobenv import setup_job
    from .ledger import drop_damaged, record
    from .settings import decode_params, feature_params

    logger = _logging(log)
    setup_job(threads)
    drop_damaged(stamp, [records, features])
    params = decode_params(
        {"thumb_size": thumb_size, "thumb_quality": thumb_quality, "max_pixels": max_pixels}
    )
    with _stats_line(logger, "STATS") as summary:
        stats = process_shard(manifest, records, archive, store, params, full=bool(full))
        summary.update(vars(stats))
    fparams = feature_params({"max_side": feature_max_side, "n_features": n_features}, params)
    with _stats_line(logger, "FEATURES") as fstats:
        fstats.update(
            run_features_shard(
                records,
                features,
                store,
                fparams,
                Path(features).parent,
                enabled=bool(geometric),
                repair=lambda sha: repair_content(Path(store).parent, archive, sha, params),
            )
        )
    record(stamp, [records, features])


def run_aggregate(
    *,
    log: str,
    records: list[str],
    skipped: str,
    pairs: list[str],
    sqlite: str,
    json_dir: str,
    registry: str,
    archive: str,
    shards: int,
    csv_dir: str | None = None,
    decisions: str | None = None,
    master_paths: list[str] | None = None,
    stamp: str | None = None,
) -> None:
    """Rule aggregate."""
    from .deliver.aggregate import aggregate
    from .ledger import record

    logger = _logging(log)
    t0 = time.perf_counter()
    info = {
        "version": __version__,
        "archive": str(archive),
        "shards": str(shards),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tables = aggregate(
        list(records),
        skipped,
        registry,
        sqlite,
        json_dir,
        info,
        list(pairs),
        csv_out=csv_dir,
        decisions=decisions,
        master_paths=master_paths or (),
    )
    counts = {name: len(rows) for name, rows in tables.items()}
    logger.info("tables %s", json.dumps(counts, sort_keys=True))
    logger.info("done in %.2f s", time.perf_counter() - t0)
    record(stamp, [sqlite, json_dir, *([csv_dir] if csv_dir else [])])


def run_index(
    *,
    log: str,
    records: list[str],
    signatures: list[str],
    index: str,
    matching: dict,
    generations: str,
    stamp: str | None = None,
) -> None:
    """Rule index: one item per distinct raster and the inverted file of words."""
    from .index.build import build_index
    from .ledger import drop_damaged, record
    from .settings import retrieval_params

    logger = _logging(log)
    # the last good index, the base of the merge: hard links of the index's files
    base = Path(generations) / "base"
    drop_damaged(stamp, [base])
    with _stats_line(logger, "STATS", cpu=True) as stats:
        stats.update(
            build_index(
                list(records), list(signatures), index, retrieval_params(matching), generations
            )
        )
    record(stamp, [index, base])


def run_match(
    *,
    log: str,
    index: str,
    chunk: int,
    n_chunks: int,
    pairs: str,
    thumbs: str,
    features: str,
    matching: dict,
    decode: dict,
    feature_settings: dict,
    stamp: str | None = None,
) -> None:
    """Rule match_chunk. A damaged thumbnail is rebuilt from a file holding its
    content, damaged features are extracted again (see ThumbCache, FeatureCache)."""
    from .ledger import drop_damaged, record
    from .settings import decode_params, feature_params, match_params
    from .verify.match import run_match_chunk

    logger = _logging(log)
    drop_damaged(stamp, [pairs])
    with _stats_line(logger, "STATS", cpu=True) as stats:
        dparams = decode_params(decode)
        fparams = feature_params(feature_settings, dparams)
        params = match_params(
            matching, {"decode": dparams.fingerprint(), "features": fparams.fingerprint()}
        )
        repair, rebuild = _mending(thumbs, features, dparams, fparams)
        stats.update(
            run_match_chunk(
                index,
                int(chunk),
                int(n_chunks),
                pairs,
                thumbs,
                features,
                params,
                fparams.fingerprint(),
                repair=repair,
                rebuild=rebuild,
            )
        )
    record(stamp, [pairs])


def _mending(
    thumbs: str, features: str, dparams: DecodeParams, fparams: FeatureParams
) -> tuple[Callable[[str], bool], Callable[[str], dict | None]]:
    """How a matching job rebuilds a damaged thumbnail (decoding a file that holds
    the content again, found in the shard records) and lost or damaged features
    (extracted again from the thumbnail). Decoding is imported only when needed."""
    from .ingest.features import extract_raster
    from .ingest.guard import recorded_archive
    from .ingest.store import load_thumbnail, read_facts

    results = Path(thumbs).parent

    def repair(sha: str) -> bool:
        from .ingest.shard import repair_content

        archive = recorded_archive(results)
        return archive is not None and repair_content(results, archive, sha, dparams)

    def rebuild(sha: str) -> dict | None:
        facts = read_facts(thumbs, sha)
        if not facts or facts.get("status") != "ok" or facts.get("blank"):
            return None
        try:
            rgb = load_thumbnail(thumbs, sha, repair)
        except FileNotFoundError:
            return None
        logging.getLogger("archive_twins").warning("features of %s extracted again", sha)
        return extract_raster(features, sha, rgb, (facts["width"], facts["height"]), fparams)

    return repair, rebuild


def run_publish(*, log: str, sqlite: str, marker: str) -> None:
    """Rule publish: staged archive.sqlite, json/ and html/ become the published
    generation, in one step; the generation and the marker record what was
    published (the `want`s of the jobs that built it, see ledger.py)."""
    from .deliver.publish import publish
    from .ledger import built
    from .util import DELIVERABLES, atomic_open

    logger = _logging(log)
    staging = Path(sqlite).parent
    results = staging.parent
    built_from = {job: (built(results, job) or {}).get("want") for job in ("aggregate", "html")}
    gen = publish(staging, results, DELIVERABLES, built_from)
    with atomic_open(marker, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "deliverables": list(DELIVERABLES),
                "generation": gen.name,
            },
            fh,
        )
    logger.info("published %s from %s as %s", ", ".join(DELIVERABLES), staging, gen.name)


def run_html(*, log: str, json_dir: str, html: str, archive: str, stamp: str | None = None) -> None:
    """Rule html."""
    from .deliver.html import build_html
    from .ledger import record

    logger = _logging(log)
    # built in {results}/staging/html: the pages keep decisions per results directory
    counts = build_html(json_dir, html, archive, store=str(Path(html).resolve().parent.parent))
    logger.info("pages %s", json.dumps(counts, sort_keys=True))
    record(stamp, [html])


def run_summary(*, log: str, json_dir: str, tsv: str) -> None:
    """Rule summary."""
    from .deliver.report import write_summary

    logger = _logging(log)
    n = write_summary(json_dir, tsv)
    logger.info("summary rows %d", n)


def run_report_pages(*, log: str, html: str, thumbs: str, pages: str) -> None:
    """Rule report_pages: the review pages with their thumbnails, for the report."""
    from .deliver.reportpages import build_report_pages

    logger = _logging(log)
    counts = build_report_pages(html, thumbs, pages)
    logger.info("report pages %s", json.dumps(counts, sort_keys=True))
