"""Soak: do incremental reruns give a fresh run's answer whatever the history?

For each seed, the same final archive (families of copies of every kind and their
hard negatives, ~80 files) is built up through a different random history: files
added in random order over several increments, some removed, one overwritten by
another image, one removed file restored. The workflow runs after every step; the
final tables (by filename) are compared with a fresh run's. Prints how many
histories were tried and how many differed (target: 0).

    python bench/history_bench.py [--seeds 1 2 3 4 5] [--steps 4] [--chunks 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from conftest import run_workflow
    from history import build_universe, compare_with_fresh, play

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--shards", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="history-bench-"))
    try:
        universe = base / "universe"
        files = build_universe(universe)
        config = {"shards": args.shards, "extra": [f"match_chunks={args.chunks}"]}
        differed = 0
        for seed in args.seeds:
            live, work = base / f"live-{seed}", base / f"work-{seed}"
            live.mkdir()
            t0 = time.perf_counter()
            log = play(
                universe,
                files,
                live,
                seed,
                lambda live=live, work=work: run_workflow(live, work, **config),
                steps=args.steps,
            )
            same = compare_with_fresh(live, work, base / f"fresh-{seed}", **config)
            bad = sorted(k for k, v in same.items() if not v)
            differed += bool(bad)
            row = {
                "seed": seed,
                "increments": log["increments"],
                "removed": len(log["removed"]),
                "changed": len(log["changed"]),
                "differing_tables": bad,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(json.dumps(row), flush=True)
            for d in (live, work, base / f"fresh-{seed}"):
                shutil.rmtree(d, ignore_errors=True)
        print(f"histories tried: {len(args.seeds)}, differed from a fresh run: {differed}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
