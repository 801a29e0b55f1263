"""A job's libraries held to the threads the rule declares, and its allocator kept
from returning and re-faulting memory: what the per-file job sets up before work.

Takes the job's thread count; gives nothing back (process-wide settings). Why: a
`decode_shard` job declares one thread, but libvips, OpenCV and OpenBLAS each start a
pool per core, whose workers spin while they wait (measured: SIFT took twice the CPU
time of one thread, quantising eight times), and glibc hands every large freed block back to
the kernel, so the next file's buffers are fresh pages again (~16,000 minor page
faults per file, a fifth of the job's CPU as system time). See docs/decode.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# Every block comes from the heap, none from mmap (a single-strip TIFF's 108 MB strip
# buffer, mapped afresh for each file, was 27,000 page faults: 43 -> 15 ms of system
# time a master), and the heap's top is handed back only past TRIM_THRESHOLD.
TRIM_THRESHOLD = 256 << 20
TOP_PAD = 16 << 20

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VIPS_CONCURRENCY")


def keep_heap() -> bool:
    """Keep freed memory in the process (glibc only; elsewhere nothing changes): one
    arena, every block from the heap, trimmed only past TRIM_THRESHOLD. Returns
    whether the allocator took the settings."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = (
        (M_ARENA_MAX, 1),
        (M_MMAP_MAX, 0),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)


def limit_threads(threads: int) -> None:
    """libvips, OpenCV and BLAS/OpenMP pools at `threads` threads (environment for
    libraries not loaded yet, their own calls for the loaded ones)."""
    n = max(1, int(threads))
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    import cv2
    import pyvips
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(n)
    pyvips.vips_lib.vips_concurrency_set(n)
    threadpool_limits(limits=n)


def setup_job(threads: int) -> None:
    """Both of the above, for a job about to process many files."""
    keep_heap()
    limit_threads(threads)
