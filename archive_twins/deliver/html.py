"""Static review pages (the contract's html/), generated from the JSON deliverable.

Each page is a small HTML skeleton, a shared script and stylesheet, and its own data
file (`data/<page>.js`, a JSON string parsed by `JSON.parse`, which browsers parse
fastest), so the pages work opened from disk, where fetch() of local JSON is
blocked. Only the current page of 24 cards is put in the DOM, so 100,000 pairs stay
fast. Filenames only ever reach the page as text.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ..records import THUMB_DIR, THUMB_LAYOUT, THUMB_SPLIT, TRANSFORM_PARAMETER
from ..util import atomic_dir, json_table
from .schema import columns

WEB = Path(__file__).parents[1] / "web"

# The page data holds files and items as arrays; their column names go with them
# (data "fields"), and app.js reads every value by name.
# A file: columns of `files`, with `thumb` 1 when it has one (the page makes the link
# from the sha256) and `href` its link's name part.
FILE_FIELDS = (
    "filename",
    "thumb",
    "width",
    "height",
    "thumb_w",
    "thumb_h",
    "format",
    "size_bytes",
    "href",
    "exif_orientation",
    "sha256",
)
# A pair: its two files (indexes into the page's files), then every copy_pairs column.
PAIR_FIELDS = ("file1", "file2", *columns("copy_pairs")[2:])
# An identical or same-pixels set: its kind and its files, the one the master rules
# keep first (csv/redundant.csv).
SET_FIELDS = ("kind", "files")
# A family: its id, whether it is mixed, its size and its members, each a row of
# MEMBER_FIELDS (files as indexes, the homography master -> member as 9 numbers).
FAMILY_FIELDS = ("family_id", "mixed", "size", "members")
MEMBER_FIELDS = ("file", "role", "via", "duplicate_of", *columns("families")[4:13],
                 "hops", "explained", "homography")  # fmt: skip
# The rows of the decisions table a page gets (decisions.js): the curator's file.
DECISION_FIELDS = tuple(columns("decisions")[:8])
SET_TABLES = ("identical_list", "same_pixels_list")
# What a page's file row is made from (`href` from the name's raw bytes)
FILE_SOURCE = (*(k for k in FILE_FIELDS if k != "href"), "filename_bytes")
# Page values that differ from the table's: the homography as 9 numbers.
PAGE_VALUES = {"homography": lambda v: [x for row in json.loads(v) for x in row]}

PAGES = {
    "families": ("Copy families: a master and its copies", "families", "family size", "families"),
    "identical": ("Identical and same-pixel sets", "sets", "set size", "sets"),
    "transform_resize": ("Resized copies", "pairs", "scale", "pairs"),
    "transform_rotate90i": ("Copies rotated by 90/180/270", "pairs", "angle", "pairs"),
    "transform_other": (
        "Other copies: crops, deformations, mirrors, colour",
        "pairs",
        "area fraction",
        "pairs",
    ),
    "related": (
        "Same object, different photograph (not copies)",
        "pairs",
        "overlap",
        "pairs",
    ),
}


def _nav(current: str) -> str:
    links = [("index", "Overview")] + [(k, v[0].split(":")[0]) for k, v in PAGES.items()]
    out = []
    for name, label in links:
        cls = ' class="current"' if name == current else ""
        out.append(f'<a href="{name}.html"{cls}>{html.escape(label)}</a>')
    return " ".join(out)


def _skeleton(name: str, title: str) -> str:
    # the key help line and the decision bar are filled in by app.js, from the keys
    # that work on this kind of page
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="assets/style.css"></head>
<body>
<header><h1 id="title">{html.escape(title)}</h1><nav>{_nav(name)}</nav></header>
<div id="controls"></div>
<div id="decisionbar"></div>
<div class="help" id="help"></div>
<main id="list"></main>
<script src="data/decisions.js"></script>
<script src="data/{name}.js"></script>
<script src="assets/app.js"></script>
</body></html>
"""


def _write_data_js(path: Path, data: dict, batch: int = 4096, var: str = "ATW_DATA") -> None:
    """`window.<var> = JSON.parse("<data as JSON, escaped>");`, written a batch of
    `files` and `items` at a time: escaping is per character, so escaped pieces
    concatenate to the escaped whole, and the page's text is never held three
    times over (its JSON, escaped, and the file's text: ~0.6 GB for 500,000 pairs)."""

    def dumps(x: object) -> str:
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))

    def esc(text: str) -> str:
        return dumps(text)[1:-1]

    with open(path, "w", encoding="utf-8") as fh:
        head = {k: v for k, v in data.items() if k not in ("files", "items")}
        fh.write(f'window.{var} = JSON.parse("' + esc(dumps(head)[:-1]))
        for key in ("files", "items"):
            rows = data[key]
            fh.write(esc(f',"{key}":['))
            for i in range(0, len(rows), batch):
                fh.write(esc(("," if i else "") + dumps(rows[i : i + batch])[1:-1]))
            fh.write(esc("]"))
        fh.write(esc("}") + '");\n')


def href_prefix(archive: Path) -> str:
    """The file:// link of the archive's root, to which a page adds each name."""
    return "file://" + quote(os.fsencode(archive) + b"/", safe="/")


def href_name(f: dict) -> str:
    """A file's name in its link: its raw bytes, percent-encoded, so a name that is
    not valid UTF-8 (a Latin-1 `caf\\xe9`) still opens."""
    raw = bytes.fromhex(f["filename_bytes"]) if f.get("filename_bytes") else f["filename"].encode()
    return quote(raw, safe="/")


def file_uri(archive: Path, f: dict) -> str:
    """file:// link to the original."""
    return href_prefix(archive) + href_name(f)


class _Files:
    """The files a page refers to, as compact rows: ids -> indexes."""

    def __init__(self, files: dict[int, tuple], archive: Path):
        self.files, self.archive, self.rows, self.index = files, archive, [], {}

    def __call__(self, file_id: int) -> int:
        if file_id not in self.index:
            f = dict(zip(FILE_SOURCE, self.files[file_id], strict=True))
            self.index[file_id] = len(self.rows)
            name = href_name(f)
            row = {
                **f,
                # 1 when there is a thumbnail: the page finds it by the sha256
                "thumb": int(bool(f.get("thumb"))),
                # the page links to href_prefix + this, or + the filename when the
                # same (most names: a fifth of the page's data saved)
                "href": None if name == f["filename"] else name,
            }
            self.rows.append([row[k] for k in FILE_FIELDS])
        return self.index[file_id]


def _pair_row(p: dict, fx: _Files) -> list:
    """A copy_pairs row as the page gets it (PAIR_FIELDS)."""
    row = {**p, "file1": fx(p["file_id1"]), "file2": fx(p["file_id2"])}
    return [PAGE_VALUES[k](row[k]) if k in PAGE_VALUES else row[k] for k in PAIR_FIELDS]


def _related_as_pair(r: dict) -> dict:
    """A related pair in the shape of a copy pair, so the pages align and flicker it
    the same way (the reason is shown where a copy's method is)."""
    return {
        **dict.fromkeys(columns("copy_pairs")),
        "file_id1": r["file_id1"],
        "file_id2": r["file_id2"],
        "kind": "related",
        "scale": r["scale"],
        "angle": r["angle"],
        "mirrored": r["mirrored"],
        "crop_x": 0.0,
        "crop_y": 0.0,
        "crop_w": 0.0,
        "crop_h": 0.0,
        "homography": r["homography"],
        "inliers": r["inliers"],
        "score": r["score"],
        "method": r["reason"],
        "area_fraction": r["overlap"],
        "colour_change": 0,
    }


def _family_items(json_dir: Path, fx: _Files) -> list[list]:
    """The families page's items (FAMILY_FIELDS), in the families table's order
    (mixed families first, then larger first)."""
    items: list[list] = []
    for r in json_table(json_dir, "families"):
        if not items or items[-1][0] != r["family_id"]:
            items.append([r["family_id"], r["mixed"], r["family_size"], []])
        row = {
            **r,
            "file": fx(r["file_id"]),
            "via": fx(r["via_file_id"]) if r["via_file_id"] is not None else None,
            "duplicate_of": fx(r["duplicate_of"]) if r["duplicate_of"] is not None else None,
            "homography": PAGE_VALUES["homography"](r["homography"]) if r["homography"] else None,
        }
        items[-1][3].append([row[k] for k in MEMBER_FIELDS])
    return items


def _summary(json_dir: Path, files: Iterator[dict]) -> dict:
    """What the overview shows, read table by table: counts, and the first 2,000
    files with errors and blank files (the files table streams past once)."""
    status: Counter = Counter()
    errors, blanks, n_errors, n_blanks = [], [], 0, 0
    for f in files:
        status[f["status"]] += 1
        if f["status"] == "error":
            n_errors += 1
            if len(errors) < 2000:
                errors.append(f)
        if f.get("blank"):
            n_blanks += 1
            if len(blanks) < 2000:
                blanks.append(f)
    kinds = {r["transform"]: r["count"] for r in json_table(json_dir, "transform_list_stat")}
    same = {r["same_pixels_set_id"] for r in json_table(json_dir, "same_pixels_list")}
    return {
        "status": status,
        "errors": (errors, n_errors),
        "blanks": (blanks, n_blanks),
        "kinds": kinds,
        "same_sets": len(same),
        "skipped": sum(1 for _ in json_table(json_dir, "skipped_files")),
        "set_sizes": list(json_table(json_dir, "identical_list_stat")),
        "related": sum(1 for _ in json_table(json_dir, "related_pairs")),
        "rejected": sum(1 for _ in json_table(json_dir, "rejected_pairs")),
        "info": {r["key"]: r["value"] for r in json_table(json_dir, "run_info")},
    }


def _index_page(s: dict, archive: Path) -> str:
    status, kinds = s["status"], s["kinds"]
    errors, n_errors = s["errors"]
    blanks, n_blanks = s["blanks"]
    rows = [
        ("image files", sum(status.values())),
        ("analysed (status ok)", status.get("ok", 0)),
        ("errors (status error)", status.get("error", 0)),
        ("skipped (not images)", s["skipped"]),
        ("byte-identical sets", sum(r["set_count"] for r in s["set_sizes"])),
        ("same-pixel sets", s["same_sets"]),
        *((f"copies: {k}", kinds.get(k, 0)) for k in ("resize", "rotate90i", "other")),
        ("same object, different photograph", s["related"]),
        ("blank images", n_blanks),
        ("copy families", s["info"].get("families", 0)),
        ("mixed families (not every member explained from the master)",
         s["info"].get("families_mixed", 0)),
        ("curator decisions read", s["info"].get("decisions", 0)),
        ("... applied", s["info"].get("decisions_applied", 0)),
        ("... about files no longer in the archive", s["info"].get("decisions_gone", 0)),
        ("pairs rejected by a curator (rejected_pairs)", s["rejected"]),
    ]  # fmt: skip
    stat = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    sizes = "".join(
        f"<tr><td>{r['set_size']}</td><td>{r['set_count']}</td></tr>" for r in s["set_sizes"]
    )
    err_rows = "".join(
        f"<tr><td><bdi>{html.escape(f['filename'])}</bdi></td>"
        f"<td>{html.escape(f['error'] or '')}</td></tr>"
        for f in errors
    )
    more = f"<p>… and {n_errors - 2000} more (see the files table).</p>" if n_errors > 2000 else ""
    blank_rows = "".join(
        f"<tr><td><bdi>{html.escape(f['filename'])}</bdi></td>"
        f"<td>{f['width']}x{f['height']}</td></tr>"
        for f in blanks
    )
    more_blank = (
        f"<p>… and {n_blanks - 2000} more (files.blank = 1).</p>" if n_blanks > 2000 else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archive-twins: overview</title>
<link rel="stylesheet" href="assets/style.css"></head>
<body><header><h1>archive-twins</h1><nav>{_nav("index")}</nav></header>
<section><p>Archive: <code>{html.escape(str(archive))}</code></p>
<table class="stats" id="summary">{stat}</table>
<p>Review the <a href="families.html">copy families</a> first: each is a master with its
copies. What to keep: <a href="../csv/redundant.csv">csv/redundant.csv</a>.</p>
<h2>Identical sets by size</h2>
<table class="stats" id="setsizes"><tr><th>set size</th><th>sets</th></tr>{sizes}</table>
<h2>Files with errors</h2>
<table class="stats" id="errors"><tr><th>file</th><th>reason</th></tr>{err_rows}</table>{more}
<h2>Blank images (plain or near-plain: never matched)</h2>
<table class="stats" id="blank"><tr><th>file</th><th>size</th></tr>{blank_rows}</table>{more_blank}
</section></body></html>
"""


def build_html(
    json_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    archive: str | os.PathLike,
    store: str | None = None,
) -> dict[str, int]:
    """Write the review pages into a fresh directory renamed over `out_dir`.

    `store` names the results directory the pages' decisions are kept for in the
    browser (localStorage); default: the parent of `out_dir`.
    """
    json_dir, out_dir = Path(json_dir), Path(out_dir)
    archive = Path(archive).resolve()
    store = store or str(out_dir.resolve().parent)
    # tables are streamed, and only the files some page shows are kept, with what
    # the page needs of them: loading the JSON of 1M files took ~4 GB
    shown = {r["file_id"] for name in (*SET_TABLES, "families") for r in json_table(json_dir, name)}
    for name in ("copy_pairs", "related_pairs"):
        for r in json_table(json_dir, name):
            shown.update((r["file_id1"], r["file_id2"]))
    files: dict[int, tuple] = {}  # FILE_SOURCE values (a tuple: 1M files as dicts, 0.7 GB)

    def keep(rows: Iterator[dict]) -> Iterator[dict]:
        for f in rows:
            if f["file_id"] in shown:
                files[f["file_id"]] = tuple(f.get(k) for k in FILE_SOURCE)
            yield f

    summary = _summary(json_dir, keep(json_table(json_dir, "files")))
    shown.clear()
    counts = {}
    with atomic_dir(out_dir) as tmp:
        (tmp / "assets").mkdir()
        (tmp / "data").mkdir()
        shutil.copy(WEB / "app.js", tmp / "assets" / "app.js")
        shutil.copy(WEB / "style.css", tmp / "assets" / "style.css")
        decided = [[r[k] for k in DECISION_FIELDS] for r in json_table(json_dir, "decisions")]
        _write_data_js(
            tmp / "data" / "decisions.js",
            {"fields": DECISION_FIELDS, "store": store, "files": [], "items": decided},
            var="ATW_DECISIONS",
        )
        for name, (title, mode, param, unit) in PAGES.items():
            fx = _Files(files, archive)
            if mode == "families":
                fields, param_field = FAMILY_FIELDS, None  # the parameter is the size
                items = _family_items(json_dir, fx)
                page = "families"
            elif mode == "sets":
                fields, param_field = SET_FIELDS, None  # the parameter is the set's size
                kept = {
                    (r["group_kind"], r["group_id"]): r["kept_file_id"]
                    for r in json_table(json_dir, "redundant")
                    if r["action"] == "keep" and r["group_kind"] != "family"
                }
                items = []
                for kind, table, key in (
                    ("identical", "identical_list", "identical_set_id"),
                    ("same_pixels", "same_pixels_list", "same_pixels_set_id"),
                ):
                    groups: dict[int, list[int]] = {}
                    for r in json_table(json_dir, table):
                        groups.setdefault(r[key], []).append(r["file_id"])
                    for gid, g in sorted(groups.items()):
                        first = kept.get((kind, str(gid)))
                        g.sort(key=lambda i, first=first: (i != first, i))
                        items.append([kind, [fx(i) for i in g]])
                page = "sets"
            elif name == "related":
                rel = json_table(json_dir, "related_pairs")
                items = [_pair_row(_related_as_pair(r), fx) for r in rel]
                fields, param_field = PAIR_FIELDS, "area_fraction"  # the overlap
                page = "related"
            else:
                kind = name.removeprefix("transform_")
                pairs = json_table(json_dir, "copy_pairs")
                items = [_pair_row(p, fx) for p in pairs if p["kind"] == kind]
                fields, param_field = PAIR_FIELDS, TRANSFORM_PARAMETER[kind]
                page = "copies"
            data = {
                "href_prefix": href_prefix(archive),
                # a thumbnail's link: the store's layout (records.thumb_path), filled in
                "thumb_template": f"../{THUMB_DIR}/{THUMB_LAYOUT}",
                "thumb_split": THUMB_SPLIT,
                "title": title,
                "mode": mode,
                "page": page,
                "param": param,
                "unit": unit,
                "param_field": param_field,
                "fields": {"file": FILE_FIELDS, "item": fields, "member": MEMBER_FIELDS},
                "files": fx.rows,
                "items": items,
            }
            _write_data_js(tmp / "data" / f"{name}.js", data)
            (tmp / f"{name}.html").write_text(_skeleton(name, title), encoding="utf-8")
            counts[name] = len(items)
        (tmp / "index.html").write_text(_index_page(summary, archive), encoding="utf-8")
    return counts
