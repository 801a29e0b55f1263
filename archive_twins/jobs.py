"""The one entry of every Snakemake job: `scripts/<rule>.py` calls `run(snakemake)`,
which finds the job's rule in `JOBS` and calls its `archive_twins.cli` function
with the keywords read from the job's inputs, outputs, params, log and wildcards.

Only `cli` is imported here (its own imports are made by each entry function):
a job's start-up stays as cheap as the rule's own imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# How a keyword is read from the `snakemake` object of a job: "SECTION.NAME" is the
# named item of one of its sections (input, output, params, wildcards, resources),
# "log" the job's one log file, "threads" its threads; or a function of the object.
Source = str | Callable[[Any], Any]


def _read(smk: Any, source: Source) -> Any:
    """The value `source` names in the job `smk`."""
    if callable(source):
        return source(smk)
    if source == "log":
        return smk.log[0]
    if source == "threads":
        return smk.threads
    section, name = source.split(".")
    return getattr(getattr(smk, section), name)


def _list(source: str) -> Callable[[Any], list]:
    """A named input, output or param holding several files, as a list."""
    return lambda smk: list(_read(smk, source))


def _first_or_none(source: str) -> Callable[[Any], Any]:
    """The one file of an optional named input (an empty list when absent), or None."""
    return lambda smk: _read(smk, source)[0] if _read(smk, source) else None


def _int(source: str) -> Callable[[Any], int]:
    return lambda smk: int(_read(smk, source))


def _full_file_check(smk: Any) -> bool:
    # from the config, not a rule param: see cli.run_decode_shard
    from .util import file_check

    return file_check(smk.config) == "full"


# rule -> (its entry function in archive_twins.cli, {keyword: where it is read})
JOBS: dict[str, tuple[str, dict[str, Source]]] = {
    "decode_shard": (
        "run_decode_shard",
        {
            "log": "log",
            "manifest": "input.manifest",
            "records": "output.records",
            "features": "output.features",
            "archive": "params.archive",
            "store": "params.store",
            "thumb_size": "params.thumb_size",
            "thumb_quality": "params.thumb_quality",
            "max_pixels": "params.max_pixels",
            "geometric": "params.geometric",
            "feature_max_side": "params.feature_max_side",
            "n_features": "params.n_features",
            "full": _full_file_check,
            "threads": "threads",
            "stamp": "input.stamp",
        },
    ),
    "index": (
        "run_index",
        {
            "log": "log",
            "records": _list("input.records"),
            "signatures": _list("input.signatures"),
            "index": "output.index",
            "matching": "params.matching",
            "generations": "params.generations",
            "stamp": "input.stamp",
        },
    ),
    "match_chunk": (
        "run_match",
        {
            "log": "log",
            "index": "input.index",
            "chunk": _int("wildcards.chunk"),
            "n_chunks": "params.n_chunks",
            "pairs": "output.pairs",
            "thumbs": "params.thumbs",
            "features": "params.features",
            "matching": "params.matching",
            "decode": "params.decode",
            "feature_settings": "params.feature_settings",
            "stamp": "input.stamp",
        },
    ),
    "aggregate": (
        "run_aggregate",
        {
            "log": "log",
            "records": _list("input.records"),
            "skipped": "input.skipped",
            "pairs": _list("input.pairs"),
            "sqlite": "output.sqlite",
            "json_dir": "output.json",
            "csv_dir": "output.csv",
            "decisions": _first_or_none("input.decisions"),
            "master_paths": _list("params.master_paths"),
            "registry": "output.registry",
            "archive": "params.archive",
            "shards": "params.shards",
            "stamp": "input.stamp",
        },
    ),
    "html": (
        "run_html",
        {
            "log": "log",
            "json_dir": "input.json",
            "html": "output.html",
            "archive": "params.archive",
            "stamp": "input.stamp",
        },
    ),
    "publish": (
        "run_publish",
        {"log": "log", "sqlite": "input.sqlite", "marker": "output.marker"},
    ),
    "summary": (
        "run_summary",
        {"log": "log", "json_dir": "input.json", "tsv": "output.tsv"},
    ),
    "report_pages": (
        "run_report_pages",
        {
            "log": "log",
            "html": "params.html",
            "thumbs": "params.thumbs",
            "pages": "output.pages",
        },
    ),
}


def keywords(smk: Any) -> tuple[str, dict[str, Any]]:
    """The entry function's name and keywords of the job `smk` (its rule's `JOBS` entry)."""
    try:
        entry, sources = JOBS[smk.rule]
    except KeyError:
        raise KeyError(f"rule {smk.rule!r} has no entry in archive_twins.jobs.JOBS") from None
    return entry, {key: _read(smk, source) for key, source in sources.items()}


def run(smk: Any) -> None:
    """Run the job `smk` (the `snakemake` object of a rule's script)."""
    from . import cli

    entry, kwargs = keywords(smk)
    getattr(cli, entry)(**kwargs)
