"""Takes the run's config and archive path, gives one-line problems that say what to do.

Snakemake's own validation prints the whole schema (hundreds of lines) for a typo;
this check runs first and names the key, with the closest valid one.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

_MAX_MESSAGE = 200


def config_problem(config: dict, schema_path: str | os.PathLike) -> str | None:
    """The first problem of `config` against the schema as one line, None when valid."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    err = best_match(Draft202012Validator(schema).iter_errors(config))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path)
    prefix = f"{where}." if where else ""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = (
                f"did you mean '{prefix}{close[0]}'?"
                if close
                else f"valid keys{' of ' + where if where else ''}: {', '.join(allowed)}"
            )
            return f"unknown config key '{prefix}{key}': {hint}"
    message = err.message
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return f"config key '{where}': {message}" if where else f"config: {message}"


def archive_problem(archive: str | os.PathLike) -> str | None:
    """Why `archive` cannot be scanned (missing, a file, unreadable), None when it can."""
    path = Path(archive)
    given = "--config archive=DIR (or `archive-twins run DIR`)"
    if not path.exists():
        return f"archive not found: {archive} does not exist; give the archive's folder: {given}"
    if not path.is_dir():
        return (
            f"archive {archive} is a file, not a folder: give the folder holding the images: "
            f"{given}"
        )
    try:
        with os.scandir(path) as it:
            next(it, None)
    except OSError as exc:
        return (
            f"archive {archive} cannot be read ({exc.strerror or exc}): give the user "
            "running the workflow read access to it"
        )
    return None
