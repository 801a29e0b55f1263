"""Progress of long jobs: takes a total and steps, gives PROGRESS log lines.

A decode job of an archive's shard can run for an hour; its log then says every
`every_s` seconds how many items are done, at what rate and when it should end, in
a line `archive-twins status` reads back (`parse_progress`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
PREFIX = "PROGRESS "
STATS = "STATS "


def format_eta(seconds: float | None) -> str:
    """A duration for people: '45 s', '12 min', '3 h 05 min'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Counts done items of `total`; logs a PROGRESS line at most every `every_s`
    seconds and once at the end (`close`)."""

    def __init__(
        self, total: int, log: logging.Logger, what: str = "files", every_s: float = 30.0
    ) -> None:
        self.total, self.log, self.what, self.every_s = total, log, what, every_s
        self.done = 0
        self.t0 = self._last = time.monotonic()

    def step(self, n: int = 1) -> None:
        """Count `n` more items done; log when the interval has passed."""
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(now)

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """The items, each counted done when the loop asks for the next; the final
        line when they are all through."""
        for item in items:
            yield item
            self.step()
        self.close()

    def close(self) -> None:
        """Log the final line (done = total when all went through); none for nothing."""
        if self.total:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        elapsed = now - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = left / rate if rate > 0 else None
        fields = {
            "what": self.what,
            "done": self.done,
            "total": self.total,
            "rate": round(rate, 3),
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }
        self.log.info(
            "%s%s (%d of %d %s, %.1f/s, ETA %s)",
            PREFIX,
            json.dumps(fields, sort_keys=True),
            self.done,
            self.total,
            self.what,
            rate,
            format_eta(eta),
        )


def parse_progress(line: str, prefix: str = PREFIX) -> dict | None:
    """The fields of a PROGRESS log line (or of a STATS line with `prefix` STATS),
    None for any other line."""
    at = 0 if line.startswith(prefix) else line.find(f" {prefix}") + 1
    if at <= 0 and not line.startswith(prefix):
        return None
    try:
        fields, _ = json.JSONDecoder().raw_decode(line, at + len(prefix))
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def parse_stats(line: str) -> dict | None:
    """The fields of a job's STATS log line (cli.py), None for any other line."""
    return parse_progress(line, STATS)


# CPU seconds per new file (decode and features) when no earlier run of these results
# says better: the reference projection's upper end (a 120 MB master, 18 CPU h for
# 262,000 of them: docs/decode.md, docs/benchmarks.md).
DEFAULT_FILE_CPU_S = 0.25


def work_estimate(todo: int, cores: int, history: list[dict]) -> str:
    """A rough line on the decode work of `todo` new or changed files on `cores`
    cores, at the rate earlier decode jobs logged (their STATS lines) when they
    decoded enough files, else DEFAULT_FILE_CPU_S."""
    history = [h for h in history if int(h.get("decoded", 0)) > 0]
    decoded = sum(int(h["decoded"]) for h in history)
    seconds = sum(float(h.get("seconds", 0.0)) for h in history)
    per_file, source = DEFAULT_FILE_CPU_S, "a typical rate"
    if decoded >= 20 and seconds > 0:
        per_file, source = seconds / decoded, "the rate of earlier runs here"
    if not todo:
        return "nothing to decode (every file is unchanged)"
    wall = todo * per_file / max(1, cores)
    return (
        f"to decode: {todo} files, roughly {format_eta(wall)} on {cores} cores "
        f"(at {per_file:.2f} s per file, {source})"
    )
