"""Progress of long jobs: takes a total and steps, gives PROGRESS log lines.

A decode job of an archive's shard can run for an hour; its log then says every
`every_s` seconds how many items are done, at what rate and when it should end, in
a line `archive-twins status` reads back (`parse_progress`).
"""

from __future__ import annotations

import json
import logging
import time

PREFIX = "PROGRESS "


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


def parse_progress(line: str) -> dict | None:
    """The fields of a PROGRESS log line, None for any other line."""
    at = line.find(PREFIX)
    if at < 0:
        return None
    try:
        fields, _ = json.JSONDecoder().raw_decode(line, at + len(PREFIX))
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None
