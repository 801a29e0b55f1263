"""The command line that runs this workflow in a working directory of its own.

Used by the tests and the benchmarks, so that they all run the real workflow the
same way a user does (`snakemake --cores N --config archive=... results=...`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake_cmd(
    archive: str | os.PathLike,
    workdir: str | os.PathLike,
    cores: int = 2,
    config: list[str] | None = None,
    options: list[str] | None = None,
) -> list[str]:
    """argv for the workflow on `archive`, results in `workdir/results`."""
    workdir = Path(workdir)
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(REPO / "config.yaml"),
        "--cores",
        str(cores),
        *(options or []),
        "--config",
        f"archive={archive}",
        f"results={workdir / 'results'}",
        *(config or []),
    ]
