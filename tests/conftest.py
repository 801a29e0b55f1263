"""Shared helpers: run the real workflow in a temporary directory and read its tables."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archive_twins.deliver.schema import TABLES  # noqa: E402
from archive_twins.runner import snakemake_cmd  # noqa: E402


def run_workflow(
    archive: Path,
    workdir: Path,
    *,
    shards: int = 3,
    cores: int = 2,
    extra: list[str] | None = None,
    options: list[str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """`snakemake --cores N --config archive=... results=...` in its own working dir."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = snakemake_cmd(archive, workdir, cores, [f"shards={shards}", *(extra or [])], options)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


BROWSER = REPO / "tests" / "browser"


def require_browser() -> None:
    """Skip the test unless node with playwright-core and Debian's Chromium are here."""
    if not shutil.which("node") or not (BROWSER / "node_modules" / "playwright-core").exists():
        pytest.skip("node + playwright-core not installed (tests/setup_system.sh installs them)")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed (tests/setup_system.sh installs it)")


def row_key(row: tuple) -> tuple:
    """Sort key for rows whose columns may hold None."""
    return tuple((v is None, v if v is not None else 0) for v in row)


def read_tables(sqlite_path: Path) -> dict[str, list[tuple]]:
    """Every contract table as a list of row tuples, in a canonical order."""
    con = sqlite3.connect(sqlite_path)
    try:
        out = {}
        for name in TABLES:
            out[name] = sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=row_key)
        return out
    finally:
        con.close()


def read_json_tables(json_dir: Path) -> dict[str, list[dict]]:
    """The JSON deliverable, one list of objects per table."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(json_dir.glob("*.json"))}


def shard_stats(results: Path) -> list[dict]:
    """The STATS lines the decode_shard jobs of the last runs logged."""
    stats = []
    for log in sorted((results / "logs" / "decode_shard").glob("*.log")):
        for line in log.read_text().splitlines():
            if " STATS " in line:
                stats.append(json.loads(line.split(" STATS ", 1)[1]))
    return stats


def canonical(tables: dict) -> dict:
    """Every table keyed by filenames instead of file_ids."""
    name = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}

    def sets(table: str, key: str) -> set:
        groups: dict[int, set] = {}
        for r in tables[table]:
            groups.setdefault(r[key], set()).add(name[r["file_id"]])
        return {frozenset(g) for g in groups.values()}

    def pairs(table: str) -> list:
        rows = []
        for r in tables[table]:
            d = {k: v for k, v in r.items() if k not in ("file_id1", "file_id2")}
            rows.append((name[r["file_id1"]], name[r["file_id2"]], json.dumps(d, sort_keys=True)))
        return sorted(rows)

    def by_name(table: str, ids: tuple[str, ...]) -> list:
        rows = []
        for r in tables.get(table, []):
            d = {k: (name.get(v) if k in ids else v) for k, v in r.items()}
            rows.append(json.dumps(d, sort_keys=True))
        return sorted(rows)

    return {
        "families": by_name("families", ("file_id", "via_file_id", "duplicate_of")),
        "rejected_pairs": pairs("rejected_pairs"),
        "related_pairs": pairs("related_pairs"),
        "redundant": by_name("redundant", ("file_id", "kept_file_id")),
        "decisions": by_name("decisions", ("file_id1", "file_id2")),
        "files": sorted(
            json.dumps(
                {k: v for k, v in r.items() if k not in ("file_id", "mtime_ns")}, sort_keys=True
            )
            for r in tables["files"]
        ),
        "identical": sets("identical_list", "identical_set_id"),
        "identical_stat": tables["identical_list_stat"],
        "same_pixels": sets("same_pixels_list", "same_pixels_set_id"),
        **{
            t: pairs(t)
            for t in ("copy_pairs", "transform_resize", "transform_rotate90i", "transform_other")
        },
        "transform_stat": tables["transform_list_stat"],
        "skipped": tables["skipped_files"],
    }


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
