"""A curator's review, end to end, in headless Chromium on a generated archive: the
family page shows each master with its derivatives; every decision is recorded by key
and by click, exported (the download) and imported again; the next run honours the
file (a rejected pair leaves copy_pairs for rejected_pairs, a related pair moves, a
confirmed copy is reviewed, a curator's master wins) and equals a fresh run given the
same decisions; a malformed file is refused and the published results keep their
bytes."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from archives import build_review_archive
from conftest import BROWSER, canonical, read_json_tables, require_browser, run_workflow

from archive_twins.util import DELIVERABLES

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
MASTER_PATHS = 'master_paths=["Masters/"]'
ASTRO, BACKUP = "Masters/astronaut  master.tif", "Backup/old share/astronaut  master.tif"
HALF, PORTRAIT = "web/astronaut half.jpg", "web/astronaut portrait.jpg"
CROP, COFFEE, COFFEE_HALF = "press/astronaut crop.jpg", "Masters/coffee.tif", "web/coffee half.jpg"
PNG = "web/coffee same size.png"


def node(*args: object) -> dict:
    proc = subprocess.run(
        ["node", str(BROWSER / "check_review.mjs"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["errors"] == [] and out["dialogs"] == []
    return out


def spoil(good: Path, bad: Path, decision: str) -> Path:
    """The file with the decision on its line 3 misspelt."""
    with open(good, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[2][4] = decision
    with open(bad, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return bad


def tree_bytes(results: Path) -> dict[str, str]:
    """sha256 of every file of the published deliverables."""
    out = {}
    for name in DELIVERABLES:
        p = results / name
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                out[f.relative_to(results).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    require_browser()
    base = tmp_path_factory.mktemp("review")
    build_review_archive(base / "archive")
    work = base / "work"
    run_workflow(base / "archive", work, shards=2, extra=[MASTER_PATHS])
    shots = base / "shots"
    shots.mkdir()
    decided = node("decide", work / "results" / "html", shots)
    return base, work, shots, decided


def test_the_family_page_shows_masters_with_their_derivatives(review):
    _, _, _, out = review
    fams = {f["master"]: f for f in out["before"]}
    assert set(fams) == {ASTRO, COFFEE}  # the master_paths rule beat the older backup
    astro = {m["name"]: m for m in fams[ASTRO]["members"]}
    assert (
        astro[BACKUP]["role"] == "duplicate" and astro[BACKUP]["text"] == "same bytes as the master"
    )
    assert {n for n, m in astro.items() if m["role"] == "derivative"} == {HALF, PORTRAIT, CROP}
    assert astro[HALF]["text"] == "resized · scale 0.5"
    # a crop reads as one, its box in the master (no "other · scale 0.9999")
    assert astro[CROP]["text"] == "cropped to 360×360 at 60,40"
    coffee = {m["name"]: m for m in fams[COFFEE]["members"]}
    assert coffee["web/coffee same size.jpg"]["text"] == "re-encoded, same size"
    assert coffee[PNG]["text"] == "same pixels as the master"
    assert out["shownName"] == ASTRO  # two spaces stay two spaces on screen
    # flicker says which file is on screen
    assert set(out["flickerLabels"]) == {f"master: {ASTRO}", f"derivative: {CROP}"}


def test_pages_offer_their_own_keys_and_say_when_empty(review):
    _, _, _, out = review
    assert "flicker" in out["help"] and "a accept" in out["help"]
    assert "flicker" not in out["setsHelp"] and " c copy" not in out["setsHelp"]
    assert out["setsFlickering"] == 0
    assert out["relatedEmpty"] == "No pairs were found in this archive."
    assert any(p.startswith("re-encoded, same size") for p in out["resizeParams"])
    assert out["cropOutlines"] >= 1  # the crop's box outlined on its source


def test_each_decision_by_key_and_by_click_is_exported(review):
    _, _, shots, out = review
    astro = {m["name"]: m["badges"] for m in out["familyDecided"][0]["members"]}
    assert astro == {CROP: ["✗ not a copy"], HALF: ["✓ copy"], PORTRAIT: ["≈ related"],
                     BACKUP: ["♻ redundant"]}  # fmt: skip
    assert out["rotateBadges"] == ["✓ copy"]
    # u undoes the last decision (not the selected card's: a decision moves on)
    assert (out["slip"], out["undone"], out["undoneCurrent"]) == (["✗ not a copy"], [], PORTRAIT)
    assert sorted(out["setBadges"]) == sorted(["♻ redundant", "♻ redundant", "★ master"])
    assert out["countAfter"].startswith("10 decisions (10 made here")
    assert out["download"] == "decisions.csv"
    text = (shots / "decisions.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(text.splitlines()))
    got = {(r["decision"], r["filename_1"], r["filename_2"]) for r in rows}
    assert got == {
        ("copy", ASTRO, HALF),  # key c, family page
        ("not_copy", ASTRO, CROP),  # click, family page
        ("related", ASTRO, PORTRAIT),  # key r, family page
        ("redundant", BACKUP, ""),  # click, family page
        ("master", COFFEE_HALF, ""),  # key m, family page
        ("copy", PORTRAIT, HALF),  # click, rotation page
        ("not_copy", CROP, PORTRAIT),  # key x, other copies page
        ("related", CROP, HALF),  # click, other copies page
        ("master", ASTRO, ""),  # click, sets page
        ("redundant", PNG, ""),  # key d, sets page
    }
    assert all(len(r["sha256_1"]) == 64 and r["decided_at"].endswith("Z") for r in rows)


def test_an_exported_file_imports_into_a_fresh_browser(review):
    base, work, shots, out = review
    bad = spoil(shots / "decisions.csv", base / "bad.csv", "cpy")
    got = node("import", work / "results" / "html", shots / "decisions.csv", bad)
    assert got["countBefore"].startswith("0 decisions")
    assert "bad.csv, line 3, column 5 (decision)" in got["refused"]
    assert got["countRefused"].startswith("0 decisions")  # nothing of a bad file
    assert got["imported"].startswith("Imported 10 of 10")
    assert got["countAfter"].startswith("10 decisions")
    assert got["families"] == out["familyAfter"]


@pytest.fixture(scope="module")
def rerun(review):
    base, work, shots, _ = review
    shutil.copy(shots / "decisions.csv", work / "results" / "decisions.csv")  # the default
    run_workflow(base / "archive", work, shards=2, extra=[MASTER_PATHS])
    return read_json_tables(work / "results" / "json")


def test_the_next_run_honours_the_decisions(rerun):
    t = rerun
    name = {r["file_id"]: r["filename"] for r in t["files"]}

    def pairs(table):
        return {(name[r["file_id1"]], name[r["file_id2"]]): r for r in t[table]}

    copies, rejected, related = pairs("copy_pairs"), pairs("rejected_pairs"), pairs("related_pairs")
    assert set(rejected) == {(ASTRO, CROP), (CROP, PORTRAIT)}
    assert not set(rejected) & set(copies)
    assert rejected[(ASTRO, CROP)]["kind"] == "other" and rejected[(ASTRO, CROP)]["decided_at"]
    assert {frozenset(p) for p in related} == {
        frozenset((ASTRO, PORTRAIT)),
        frozenset((CROP, HALF)),
    }
    assert {p for p, r in copies.items() if r["reviewed"]} == {(ASTRO, HALF), (PORTRAIT, HALF)}
    kinds = ("transform_resize", "transform_rotate90i", "transform_other")
    transform = {(name[r["file_id1"]], name[r["file_id2"]]) for k in kinds for r in t[k]}
    assert not transform & set(rejected)
    fam = {name[r["file_id"]]: r for r in t["families"]}
    assert fam[COFFEE_HALF]["role"] == "master" and fam[COFFEE]["role"] == "derivative"
    assert fam[ASTRO]["role"] == "master" and CROP not in fam  # its pairs are all decided away
    assert fam[PORTRAIT]["via_file_id"] is not None  # reached through the half now
    info = {r["key"]: r["value"] for r in t["run_info"]}
    assert (info["decisions"], info["decisions_applied"], info["decisions_gone"]) == (
        "10",
        "10",
        "0",
    )


def test_redundant_csv_lists_the_curators_choices(rerun, review):
    _, work, _, _ = review
    with open(work / "results" / "csv" / "redundant.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by = {(r["group_kind"], r["filename"]): r for r in rows}
    backup = by[("family", BACKUP)]
    assert (backup["action"], backup["kept_filename"], backup["decision"]) == (
        "redundant", ASTRO, "curator: redundant")  # fmt: skip
    assert by[("family", COFFEE_HALF)]["decision"] == "curator: master"
    assert by[("same_pixels", PNG)]["decision"] == "curator: redundant"


def test_pages_show_the_decisions_of_the_file_and_a_fresh_run_agrees(rerun, review):
    base, work, shots, out = review
    shown = node("show", work / "results" / "html", shots)
    assert shown["count"] == "10 decisions"  # from the file, nothing pending
    astro = next(f for f in shown["families"] if f["master"] == ASTRO)
    assert {m["name"]: m["badges"] for m in astro["members"]}[HALF] == ["✓ copy"]
    assert shown["rotateBadges"] == ["✓ copy"]
    assert shown["relatedCards"] == 2
    fresh = base / "fresh"
    run_workflow(
        base / "archive",
        fresh,
        shards=1,
        extra=[MASTER_PATHS, f"decisions={shots / 'decisions.csv'}"],
    )
    a = canonical(rerun)
    b = canonical(read_json_tables(fresh / "results" / "json"))
    assert {k: a[k] == b[k] for k in a} == dict.fromkeys(a, True)


def test_a_malformed_file_is_refused_and_nothing_changes(rerun, review):
    base, work, shots, _ = review
    results = work / "results"
    before = tree_bytes(results)
    spoil(shots / "decisions.csv", results / "decisions.csv", "relatd")
    proc = run_workflow(base / "archive", work, shards=2, extra=[MASTER_PATHS], check=False)
    assert proc.returncode != 0
    assert f"decisions file {results / 'decisions.csv'}, line 3, column 5 (decision)" in proc.stderr
    assert tree_bytes(results) == before
