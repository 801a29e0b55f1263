"""Histories of an archive: the same final archive reached through random increments,
removals and changes, for comparing incremental reruns with a fresh run.

Used by tests/test_e2e_history.py (one seed) and bench/history_bench.py (many).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from archives import build_copies_archive, build_geometric_archive
from conftest import canonical, read_json_tables, run_workflow


def build_universe(root: Path) -> list[str]:
    """Every file the histories draw from: families of copies of every kind (resize,
    rotate90i, mirror, greyscale, crops, small rotations, perspective, colour and
    contrast changes, border + caption, strong JPEG) and their hard negatives."""
    build_copies_archive(root / "c")
    build_geometric_archive(root / "g")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _place(universe: Path, live: Path, rel: str, src: str | None = None) -> None:
    dst = live / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(universe / (src or rel), dst)


def play(
    universe: Path,
    files: list[str],
    live: Path,
    seed: int,
    run: Callable[[], None],
    steps: int = 3,
) -> dict:
    """Build `live` up in `steps` increments of the files in random order, running
    `run()` after each; along the way remove some files, re-add one of them, and
    overwrite one with another image (its mtime moved on). Returns what happened."""
    rng = random.Random(seed)
    order = files[:]
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), steps - 1))
    parts = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    log: dict = {"increments": [len(p) for p in parts], "removed": [], "changed": []}
    present: list[str] = []
    for k, part in enumerate(parts):
        for rel in part:
            _place(universe, live, rel)
        present += part
        if k == 1:
            # remove three files for good, and one that comes back at the end
            for rel in rng.sample(present, 4):
                (live / rel).unlink()
                present.remove(rel)
                log["removed"].append(rel)
            # overwrite one file with the bytes of another image of the same format
            target = rng.choice(present)
            ext = Path(target).suffix.lower()
            same_ext = [f for f in files if Path(f).suffix.lower() == ext and f != target]
            source = rng.choice(same_ext)
            st = (live / target).stat()
            _place(universe, live, target, source)
            os.utime(live / target, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
            log["changed"].append([target, source])
        if k == steps - 1 and log["removed"]:
            back = log["removed"].pop()
            _place(universe, live, back)
        time.sleep(1.05)  # distinct mtimes between runs
        run()
    return log


def compare_with_fresh(live: Path, work: Path, fresh: Path, **kw: object) -> dict[str, bool]:
    """Table by table (by filename, file ids aside): does the incremental result
    equal a fresh run on the same final archive?"""
    run_workflow(live, fresh, **kw)
    inc = canonical(read_json_tables(work / "results" / "json"))
    new = canonical(read_json_tables(fresh / "results" / "json"))
    return {name: inc[name] == new[name] for name in inc}
