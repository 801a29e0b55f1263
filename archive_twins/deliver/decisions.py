"""A curator's decisions (`decisions.csv`, written by the review pages) and what the
next run does with them.

Takes the CSV file a curator exported (and maybe edited in a spreadsheet); gives the
validated decisions, the latest per key, and applies the pair decisions to the
matching jobs' copies and related pairs: `not_copy` pairs are rejected, `related`
pairs move to the related pairs, confirmed copies are marked reviewed. `master` and
`redundant` decisions are about one file; the family rules (families.py) take them.

Decisions are keyed by content (sha256), so renames and moves keep them; a pair is
keyed by its two sha256s in either order, a file decision by its sha256 and name
(the name only tells byte-identical files apart while it still names one of them).
A malformed file raises `DecisionError` naming the file, line and column, before
anything is built.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from ..records import CopyRecord

HEADER = ("sha256_1", "sha256_2", "filename_1", "filename_2", "decision", "note", "decided_at")
PAIR_DECISIONS = ("copy", "not_copy", "related")
FILE_DECISIONS = ("master", "redundant")
DECISIONS = PAIR_DECISIONS + FILE_DECISIONS
SHA256 = re.compile(r"[0-9a-f]{64}")
# A decision whose time is empty sorts before every dated one.
_NO_TIME = datetime.min.replace(tzinfo=UTC)


class DecisionError(ValueError):
    """A decisions file the run must not go ahead with; the message names the file,
    the line and the column."""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """One row of decisions.csv (sha256s lower case, `sha2` empty for a file decision)."""

    sha1: str
    sha2: str
    filename1: str
    filename2: str
    decision: str
    note: str
    decided_at: str
    line: int = 0

    @property
    def key(self) -> tuple:
        """What a later decision on the same thing replaces this one by."""
        if self.decision in FILE_DECISIONS:
            return ("file", self.sha1, self.filename1)
        return ("pair", *sorted((self.sha1, self.sha2)))

    @property
    def when(self) -> datetime:
        return _parse_time(self.decided_at) if self.decided_at else _NO_TIME


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def resolve_path(configured: str | None, results: str | os.PathLike) -> Path | None:
    """The decisions file a run reads: the configured one (which must exist), else
    `{results}/decisions.csv` when it exists, else none."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise DecisionError(f"decisions file {configured} not found (config key decisions)")
        return path
    default = Path(results) / "decisions.csv"
    return default if default.is_file() else None


def read_decisions(path: str | os.PathLike) -> list[Decision]:
    """The file's decisions, validated, the latest per key (a later line wins a tie).

    Raises DecisionError at the first malformed line: a missing column, a sha256 that
    is not 64 hex digits, an unknown decision, a time that is not ISO 8601, a pair
    decision without its second file or a file decision with one.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet may save a byte order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DecisionError(f"decisions file {path}, line {line}: not UTF-8 text") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_rows(rows, path)
    except csv.Error as exc:  # a field beyond the csv module's limit (128 KB)
        raise DecisionError(f"decisions file {path}, line {rows.line_num}: {exc}") from None


def _read_rows(rows: Iterator[list[str]], path: str | os.PathLike) -> list[Decision]:
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise DecisionError(
            f"decisions file {path}, line 1: empty, expected the header {','.join(HEADER)}"
        ) from None
    for i, name in enumerate(HEADER, 1):
        if name not in header:
            raise DecisionError(
                f"decisions file {path}, line 1, column {i} ({name}): missing; the header "
                f"must be {','.join(HEADER)}"
            )
    col = {name: header.index(name) for name in HEADER}
    latest: dict[tuple, Decision] = {}
    start = rows.line_num + 1
    for row in rows:
        line, start = start, rows.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DecisionError(
                f"decisions file {path}, line {line}: {len(row)} fields, the header has "
                f"{len(header)}"
            )
        d = _decision(row, col, line, path)
        old = latest.get(d.key)
        if old is None or d.when >= old.when:
            latest[d.key] = d
    return sorted(latest.values(), key=lambda d: d.line)


def _decision(row: list[str], col: Mapping[str, int], line: int, path: object) -> Decision:
    def where(name: str) -> str:
        return f"decisions file {path}, line {line}, column {col[name] + 1} ({name})"

    v = {name: row[i] for name, i in col.items()}
    decision = v["decision"].strip().lower()
    if decision not in DECISIONS:
        raise DecisionError(
            f"{where('decision')}: unknown decision {v['decision']!r}; "
            f"one of {', '.join(DECISIONS)}"
        )
    sha1, sha2 = v["sha256_1"].strip().lower(), v["sha256_2"].strip().lower()
    if not SHA256.fullmatch(sha1):
        raise DecisionError(
            f"{where('sha256_1')}: {v['sha256_1']!r} is not a sha256 (64 hex digits)"
        )
    if decision in FILE_DECISIONS:
        for name in ("sha256_2", "filename_2"):
            if v[name].strip():
                raise DecisionError(f"{where(name)}: must be empty for a {decision} decision")
    elif not SHA256.fullmatch(sha2):
        raise DecisionError(
            f"{where('sha256_2')}: {v['sha256_2']!r} is not a sha256 (64 hex digits)"
        )
    elif sha1 == sha2:
        raise DecisionError(f"{where('sha256_2')}: the pair's two files are the same content")
    when = v["decided_at"].strip()
    if when:
        try:
            _parse_time(when)
        except ValueError:
            raise DecisionError(
                f"{where('decided_at')}: {when!r} is not an ISO 8601 time "
                "(such as 2025-03-01T14:05:00Z)"
            ) from None
    return Decision(sha1, sha2, v["filename_1"], v["filename_2"], decision, v["note"], when, line)


@dataclasses.dataclass
class Applied:
    """What the pair decisions did to the matching jobs' results."""

    copies: list[CopyRecord]
    related: list[CopyRecord]
    # rejected pairs with the decision's note and time (copies, or related pairs)
    rejected: list[tuple[CopyRecord, str, str]]
    # raster pairs (frozensets of keys) a curator said are related: kept as such
    curator_related: set[frozenset]
    # decisions that found their pair among the results, by line
    applied: set[int]


def apply_pair_decisions(
    copies: Iterable[CopyRecord],
    related: Iterable[CopyRecord],
    decisions: Iterable[Decision],
    raster_of: Mapping[str, str],
) -> Applied:
    """Copies and related pairs after the curator's pair decisions (`raster_of`: a
    present content's sha256 -> its raster key).

    `not_copy`: the pair leaves the copies (and the related pairs) for the rejected;
    `related`: a copy becomes a related pair (reason 'curator'); `copy`: the copy is
    marked reviewed. A decision about contents no longer present changes nothing.
    """
    by_pair: dict[frozenset, Decision] = {}
    for d in decisions:
        if d.decision in PAIR_DECISIONS and d.sha1 in raster_of and d.sha2 in raster_of:
            pair = frozenset((raster_of[d.sha1], raster_of[d.sha2]))
            old = by_pair.get(pair)
            if len(pair) == 2 and (old is None or d.when >= old.when):
                by_pair[pair] = d
    out = Applied([], [], [], set(), set())
    for c in copies:
        d = by_pair.get(frozenset((c.key1, c.key2)))
        if d is None:
            out.copies.append(c)
            continue
        out.applied.add(d.line)
        if d.decision == "not_copy":
            out.rejected.append((c, d.note, d.decided_at))
        elif d.decision == "related":
            out.related.append(dataclasses.replace(c, kind="related", reason="curator"))
            out.curator_related.add(frozenset((c.key1, c.key2)))
        else:
            out.copies.append(dataclasses.replace(c, reviewed=1))
    for r in related:
        d = by_pair.get(frozenset((r.key1, r.key2)))
        if d is not None and d.decision == "not_copy":
            out.applied.add(d.line)
            out.rejected.append((r, d.note, d.decided_at))
            continue
        if d is not None and d.decision == "related":
            out.applied.add(d.line)
            out.curator_related.add(frozenset((r.key1, r.key2)))
        # a related pair is not confirmed as a copy: no pixel check passed
        out.related.append(r)
    return out


def _epoch(d: Decision) -> float:
    return d.when.timestamp() if d.decided_at else -1e18


def file_decisions_table(con: object, decisions: Iterable[Decision]) -> None:
    """duckdb table `dec_file` (file_id, decision, master_at, redundant, decided_at,
    line): the file decisions resolved against the files of table `f`. A decision
    names a content and a file: the file of that name when it still holds that
    content, else every file holding it (the file was renamed or moved). A file
    with two decisions takes the latest."""
    ds = [d for d in decisions if d.decision in FILE_DECISIONS]
    con.execute(
        """CREATE TABLE dec_file AS
           WITH d AS (SELECT unnest(?::VARCHAR[]) AS sha, unnest(?::VARCHAR[]) AS fname,
                             unnest(?::VARCHAR[]) AS decision, unnest(?::DOUBLE[]) AS t,
                             unnest(?::VARCHAR[]) AS decided_at, unnest(?::BIGINT[]) AS line),
           m AS (SELECT f.file_id, d.* FROM d JOIN f ON f.sha256 = d.sha
                 WHERE f.filename = d.fname OR NOT EXISTS
                       (SELECT 1 FROM f g WHERE g.sha256 = d.sha AND g.filename = d.fname))
           SELECT DISTINCT ON (file_id) file_id, decision,
                  CASE WHEN decision = 'master' THEN t END AS master_at,
                  decision = 'redundant' AS redundant, decided_at, line
           FROM m ORDER BY file_id, t DESC, line DESC""",
        [
            [d.sha1 for d in ds],
            [d.filename1 for d in ds],
            [d.decision for d in ds],
            [_epoch(d) for d in ds],
            [d.decided_at for d in ds],
            [d.line for d in ds],
        ],
    )


# the decisions table: the file's rows and what became of each
DECISION_COLUMNS = [
    *((name, "TEXT") for name in HEADER),
    # 'applied', 'gone' (a file no longer in the archive) or 'not applied' (no copy
    # or related pair between the two contents it could apply to)
    ("status", "TEXT NOT NULL"),
    ("file_id1", "INTEGER"),
    ("file_id2", "INTEGER"),
]


def decision_rows(
    decisions: Iterable[Decision], present: Mapping[str, int], applied: set[int]
) -> list[tuple]:
    """The `decisions` table (DECISION_COLUMNS): every decision of the file with its
    status (`present`: sha256 -> a file holding it; `applied`: lines of the pair
    decisions that found their pair)."""
    rows = []
    for d in decisions:
        f1, f2 = present.get(d.sha1), present.get(d.sha2) if d.sha2 else None
        if f1 is None or (d.sha2 and f2 is None):
            status = "gone"
        elif d.decision in FILE_DECISIONS or d.line in applied:
            status = "applied"
        else:
            status = "not applied"
        rows.append(
            (
                d.sha1,
                d.sha2,
                d.filename1,
                d.filename2,
                d.decision,
                d.note,
                d.decided_at,
                status,
                f1,
                f2,
            )  # fmt: skip
        )
    return rows
