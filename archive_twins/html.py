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
from pathlib import Path
from urllib.parse import quote

from .records import TRANSFORM_PARAMETER
from .schema import columns
from .util import atomic_dir

WEB = Path(__file__).parent / "web"

# The page data holds files and items as arrays; their column names go with them
# (data "fields"), and app.js reads every value by name.
# A file: columns of `files`, with `thumb` relative to the page and `href` its link.
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
)
# A pair: its two files (indexes into the page's files), then every copy_pairs column.
PAIR_FIELDS = ("file1", "file2", *columns("copy_pairs")[2:])
# An identical or same-pixels set: its kind and its files.
SET_FIELDS = ("kind", "files")
# Page values that differ from the table's: the homography as 9 numbers.
PAGE_VALUES = {"homography": lambda v: [x for row in json.loads(v) for x in row]}

PAGES = {
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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="assets/style.css"></head>
<body>
<header><h1 id="title">{html.escape(title)}</h1><nav>{_nav(name)}</nav></header>
<div id="controls"></div>
<div class="help">keys: n / p pages · j / k select · f flicker (aligned) · b blend ·
s side by side · / search. Click a filename to open the original.</div>
<main id="list"></main>
<script src="data/{name}.js"></script>
<script src="assets/app.js"></script>
</body></html>
"""


def _data_js(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return "window.ATW_DATA = JSON.parse(" + json.dumps(text, ensure_ascii=False) + ");\n"


def file_uri(archive: Path, f: dict) -> str:
    """file:// link to the original: the name's raw bytes, percent-encoded, so a
    name that is not valid UTF-8 (a Latin-1 `caf\\xe9`) still opens."""
    raw = bytes.fromhex(f["filename_bytes"]) if f.get("filename_bytes") else f["filename"].encode()
    return "file://" + quote(os.fsencode(archive) + b"/" + raw, safe="/")


class _Files:
    """The files a page refers to, as compact rows: ids -> indexes."""

    def __init__(self, files: dict[int, dict], archive: Path):
        self.files, self.archive, self.rows, self.index = files, archive, [], {}

    def __call__(self, file_id: int) -> int:
        if file_id not in self.index:
            f = self.files[file_id]
            self.index[file_id] = len(self.rows)
            row = {
                **f,
                "thumb": f"../{f['thumb']}" if f.get("thumb") else "",
                "href": file_uri(self.archive, f),
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


def _index_page(t: dict[str, list[dict]], archive: Path) -> str:
    files = t["files"]
    status = Counter(f["status"] for f in files)
    kinds = {r["transform"]: r["count"] for r in t["transform_list_stat"]}
    n_same = len({r["same_pixels_set_id"] for r in t["same_pixels_list"]})
    rows = [
        ("image files", len(files)),
        ("analysed (status ok)", status.get("ok", 0)),
        ("errors (status error)", status.get("error", 0)),
        ("skipped (not images)", len(t["skipped_files"])),
        ("byte-identical sets", sum(r["set_count"] for r in t["identical_list_stat"])),
        ("same-pixel sets", n_same),
        *((f"copies: {k}", kinds.get(k, 0)) for k in ("resize", "rotate90i", "other")),
        ("same object, different photograph", len(t.get("related_pairs", []))),
        ("blank images", sum(1 for f in files if f.get("blank"))),
    ]
    stat = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    sizes = "".join(
        f"<tr><td>{r['set_size']}</td><td>{r['set_count']}</td></tr>"
        for r in t["identical_list_stat"]
    )
    errors = [f for f in files if f["status"] == "error"]
    err_rows = "".join(
        f"<tr><td><bdi>{html.escape(f['filename'])}</bdi></td>"
        f"<td>{html.escape(f['error'] or '')}</td></tr>"
        for f in errors[:2000]
    )
    more = (
        f"<p>… and {len(errors) - 2000} more (see the files table).</p>"
        if len(errors) > 2000
        else ""
    )
    blanks = [f for f in files if f.get("blank")]
    blank_rows = "".join(
        f"<tr><td><bdi>{html.escape(f['filename'])}</bdi></td>"
        f"<td>{f['width']}x{f['height']}</td></tr>"
        for f in blanks[:2000]
    )
    more_blank = (
        f"<p>… and {len(blanks) - 2000} more (files.blank = 1).</p>" if len(blanks) > 2000 else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archive-twins: overview</title>
<link rel="stylesheet" href="assets/style.css"></head>
<body><header><h1>archive-twins</h1><nav>{_nav("index")}</nav></header>
<section><p>Archive: <code>{html.escape(str(archive))}</code></p>
<table class="stats" id="summary">{stat}</table>
<h2>Identical sets by size</h2>
<table class="stats" id="setsizes"><tr><th>set size</th><th>sets</th></tr>{sizes}</table>
<h2>Files with errors</h2>
<table class="stats" id="errors"><tr><th>file</th><th>reason</th></tr>{err_rows}</table>{more}
<h2>Blank images (plain or near-plain: never matched)</h2>
<table class="stats" id="blank"><tr><th>file</th><th>size</th></tr>{blank_rows}</table>{more_blank}
</section></body></html>
"""


def build_html(
    json_dir: str | os.PathLike, out_dir: str | os.PathLike, archive: str | os.PathLike
) -> dict[str, int]:
    """Write the review pages into a fresh directory renamed over `out_dir`."""
    json_dir, out_dir = Path(json_dir), Path(out_dir)
    archive = Path(archive).resolve()
    t = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in json_dir.glob("*.json")}
    files = {f["file_id"]: f for f in t["files"]}
    counts = {}
    with atomic_dir(out_dir) as tmp:
        (tmp / "assets").mkdir()
        (tmp / "data").mkdir()
        shutil.copy(WEB / "app.js", tmp / "assets" / "app.js")
        shutil.copy(WEB / "style.css", tmp / "assets" / "style.css")
        for name, (title, mode, param, unit) in PAGES.items():
            fx = _Files(files, archive)
            if mode == "sets":
                fields, param_field = SET_FIELDS, None  # the parameter is the set's size
                items = []
                for kind, table, key in (
                    ("identical", "identical_list", "identical_set_id"),
                    ("same_pixels", "same_pixels_list", "same_pixels_set_id"),
                ):
                    groups: dict[int, list[int]] = {}
                    for r in t[table]:
                        groups.setdefault(r[key], []).append(r["file_id"])
                    items += [[kind, [fx(i) for i in sorted(g)]] for _, g in sorted(groups.items())]
            elif name == "related":
                items = [_pair_row(_related_as_pair(r), fx) for r in t.get("related_pairs", [])]
                fields, param_field = PAIR_FIELDS, "area_fraction"  # the overlap
            else:
                kind = name.removeprefix("transform_")
                items = [_pair_row(p, fx) for p in t["copy_pairs"] if p["kind"] == kind]
                fields, param_field = PAIR_FIELDS, TRANSFORM_PARAMETER[kind]
            data = {
                "title": title,
                "mode": mode,
                "param": param,
                "unit": unit,
                "param_field": param_field,
                "fields": {"file": FILE_FIELDS, "item": fields},
                "files": fx.rows,
                "items": items,
            }
            (tmp / "data" / f"{name}.js").write_text(_data_js(data), encoding="utf-8")
            (tmp / f"{name}.html").write_text(_skeleton(name, title), encoding="utf-8")
            counts[name] = len(items)
        (tmp / "index.html").write_text(_index_page(t, archive), encoding="utf-8")
    return counts
