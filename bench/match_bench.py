"""Benchmark the hash stage of matching: image pairs compared per second, and memory.

For N synthetic images (8 dihedral 64-bit pHashes each, with planted near-copies),
one matching block is timed: Q query images against the whole index of N. The
rate (image pairs per second, each pair = 8 orientation comparisons) gives the time
of the full all-pairs search, N*(N-1)/2 pairs, which the block jobs split between
them. Each N runs in its own process so peak RSS is that size's alone.

    python bench/match_bench.py [--sizes 10000 100000 1000000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(n: int, q: int, max_dist: int) -> dict:
    import numpy as np

    from archive_twins.ingest.hashing import hamming_search

    rng = np.random.default_rng(0)
    index = rng.integers(0, 2**64, size=(n, 8), dtype=np.uint64, endpoint=False)
    # plant near-copies: queries 0..q/10 are index rows with 3 bits flipped
    picks = rng.choice(n, size=q, replace=False)
    queries = index[picks, 0].copy()
    queries[: q // 10] ^= np.uint64(0b10101)
    queries[q // 10 :] = rng.integers(0, 2**64, size=q - q // 10, dtype=np.uint64)
    t0 = time.perf_counter()
    qi, ii, oi, di = hamming_search(queries, index, max_dist)
    secs = time.perf_counter() - t0
    pairs = q * n
    rate = pairs / secs
    full_pairs = n * (n - 1) / 2
    return {
        "n_images": n,
        "queries": q,
        "hits": int(len(qi)),
        "planted_found": int(len(set(qi.tolist()) & set(range(q // 10)))),
        "seconds": round(secs, 3),
        "pairs_per_second": round(rate),
        "hash_comparisons_per_second": round(rate * 8),
        "full_all_pairs_cpu_hours": round(full_pairs / rate / 3600, 3),
        "index_mb": round(index.nbytes / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--max-dist", type=int, default=12)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, min(args.queries, args.one), args.max_dist)))
        return
    print(
        f"{'images':>9} {'pairs/s':>13} {'hash cmp/s':>14} {'all-pairs CPU h':>16} "
        f"{'index MB':>9} {'peak RSS MB':>12} {'planted found':>14}"
    )
    for n in args.sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--queries",
                str(args.queries),
                "--max-dist",
                str(args.max_dist),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"{r['n_images']:>9} {r['pairs_per_second']:>13,} "
            f"{r['hash_comparisons_per_second']:>14,} {r['full_all_pairs_cpu_hours']:>16} "
            f"{r['index_mb']:>9} {r['peak_rss_mb']:>12} "
            f"{r['planted_found']:>6}/{r['queries'] // 10}"
        )


if __name__ == "__main__":
    main()
