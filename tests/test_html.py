"""The review pages in a real headless Chromium (Debian's, driven by playwright-core):
every page opens from disk, pages through, selects by keyboard, searches, flickers
an aligned pair, and shows hostile filenames as text."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from conftest import BROWSER, require_browser, run_workflow

from archive_twins.demo import build_demo_archive, copy_bytes, photo, save

pytestmark = pytest.mark.browser
EVIL = "<script>alert(\"x\")<!-- 'q' & <b>bold.jpg"
EVIL_ERROR = "<img src=x onerror=alert(2)>.tif"


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("html") / "archive"
    build_demo_archive(root)
    copy_bytes(root / "web" / "astronaut.jpg", root / "evil" / EVIL)
    (root / "evil" / EVIL_ERROR).write_bytes(b"")
    big = photo("hubble_deep_field")
    for i in range(26):  # 26 more identical sets, disjoint tiles: the sets page has 2 pages
        y, x = (i // 6) * 170, (i % 6) * 160
        tile = np.ascontiguousarray(big[y : y + 120, x : x + 120])
        p = save(tile, root / "tiles" / f"tile_{i:02d}.png")
        copy_bytes(p, root / "tiles_copy" / p.name)
    work = tmp_path_factory.mktemp("htmlwork")
    run_workflow(root, work, shards=3)
    shots = work / "screenshots"
    shots.mkdir()
    proc = subprocess.run(
        ["node", str(BROWSER / "check_pages.mjs"), str(work / "results" / "html"), str(shots)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), shots


def test_no_script_runs_and_no_errors(seen):
    out, _ = seen
    assert out["dialogs"] == []
    assert out["errors"] == []
    assert out["index"]["scripts"] == 0
    for name, page in out["pages"].items():
        # only data/decisions.js, data/<page>.js and assets/app.js
        assert page["scripts"] == 3, name


def test_hostile_names_are_text(seen):
    out, _ = seen
    assert EVIL in out["pages"]["identical"]["text"] or EVIL in json.dumps(out["pages"])
    assert f"evil/{EVIL_ERROR}" in out["index"]["errors"]


def test_every_page_lists_its_items(seen):
    out, _ = seen
    summary = dict(r.split("\t") for r in out["index"]["summary"])
    assert summary["copies: resize"] == "4" and summary["copies: rotate90i"] == "3"
    for name, n in (("transform_resize", 4), ("transform_rotate90i", 3), ("transform_other", 2)):
        assert out["pages"][name]["cards"] == n, name
        assert out["pages"][name]["info"] == f"page 1 of 1 · {n} of {n} pairs"
        # each card says what made its first file the source
        assert out["pages"][name]["text"].count("source by ") == n, name


def test_paging_keyboard_and_search(seen):
    out, _ = seen
    sets = out["pages"]["identical"]
    assert sets["cards"] == 24
    assert sets["info"].startswith("page 1 of 2")
    assert sets["afterNext"].startswith("page 2 of 2")
    assert sets["afterKeyPrev"].startswith("page 1 of 2")
    assert sets["selected"] == "1"  # 'j' moved the selection to the second card
    assert sets["searchInfo"].startswith("page 1 of 1 · ")
    assert sets["searchFirst"]
    # a decision on a page's last file moves on to the next page
    assert sets["beforeLastDecision"].startswith("page 1 of 2")
    assert sets["afterLastDecision"].startswith("page 2 of 2")
    assert sets["lastDecisionCount"].startswith("1 decisions")


def test_flicker_alternates_and_copy_is_aligned(seen):
    out, _ = seen
    for name in ("transform_resize", "transform_rotate90i", "transform_other"):
        page = out["pages"][name]
        assert {"visible", "hidden"} <= set(page["flickerStates"]), name
        base, over = page["geometry"]["base"], page["geometry"]["overlay"]
        # whole-frame copies: the aligned copy lands exactly on the source
        assert np.allclose(base, over, atol=1.5), (name, base, over)
        assert page["blend"]


def test_a_side_by_side_card_shows_exactly_two_images(seen):
    out, _ = seen
    for name in ("transform_resize", "transform_rotate90i", "transform_other"):
        assert out["pages"][name]["paintedImages"] == 2, name


def test_flicker_labels_the_file_on_screen(seen):
    out, _ = seen
    for name in ("transform_resize", "transform_rotate90i", "transform_other"):
        page = out["pages"][name]
        source, copy = page["names"]
        for visibility, label in page["flickerLabels"]:
            assert label == (f"copy: {copy}" if visibility == "visible" else f"source: {source}")


def test_screenshots_taken(seen):
    _, shots = seen
    names = {p.name for p in shots.glob("*.png")}
    assert {
        "index.png",
        "identical.png",
        "transform_resize_flicker.png",
        "transform_other_blend.png",
    } <= names


def test_names_isolated_and_thumbnails_oriented(tmp_path):
    """A right-to-left override stays inside its name (<bdi>, unicode-bidi: isolate);
    a thumbnail of an EXIF orientation 6 file is shown turned by 90 degrees in a box
    of swapped size; a Latin-1 name links to its percent-encoded raw bytes."""
    require_browser()
    from archive_twins.deliver.html import build_html

    rlo = "evil\u202egpj.exe.jpg"
    base = {"status": "ok", "error": None, "format": "jpeg", "size_bytes": 10}
    files = [
        {
            **base,
            "file_id": 1,
            "filename": "caf\\xe9/turned.jpg",
            "exif_orientation": 6,
            "filename_bytes": b"caf\xe9/turned.jpg".hex(),
        },
        {
            **base,
            "file_id": 2,
            "filename": rlo,
            "exif_orientation": None,
            "filename_bytes": rlo.encode().hex(),
        },
    ]
    for f in files:
        f.update(thumb=None, width=800, height=400, thumb_w=160, thumb_h=80)
    tables = {name: [] for name in ("same_pixels_list", "copy_pairs", "skipped_files")}
    tables.update(
        files=files,
        identical_list=[
            {"identical_set_id": 1, "file_id": 1},
            {"identical_set_id": 1, "file_id": 2},
        ],
        identical_list_stat=[{"set_size": 2, "set_count": 1}],
        transform_list_stat=[],
    )
    jdir = tmp_path / "json"
    jdir.mkdir()
    for name, rows in tables.items():
        (jdir / f"{name}.json").write_text(json.dumps(rows))
    build_html(jdir, tmp_path / "html", tmp_path / "arch")
    proc = subprocess.run(
        ["node", str(BROWSER / "check_names.mjs"), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["errors"] == []
    names = {n["text"]: n for n in out["names"]}
    assert names[rlo]["bidi"] == "isolate"
    assert names["caf\\xe9/turned.jpg"]["href"].endswith("/arch/caf%E9/turned.jpg")
    (turned,) = out["oriented"]
    assert turned["box"] == [80, 160] and "rotate(90deg)" in turned["transform"]
    assert out["thumbs"] == 2
