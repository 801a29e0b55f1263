"""`snakemake --report report.zip` works and the review pages inside it show their
thumbnails (checked in headless Chromium)."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
from conftest import BROWSER, require_browser, run_workflow

from archive_twins.demo import photo, save
from archive_twins.runner import snakemake_cmd

pytestmark = pytest.mark.e2e


def test_report_zip_pages_show_thumbnails(tmp_path):
    require_browser()
    archive = tmp_path / "archive"
    a = photo("astronaut")[::4, ::4]
    save(a, archive / "a.png")
    save(a, archive / "copy" / "a.png")
    save(photo("coffee")[::4, ::4], archive / "b.jpg")
    save(photo("coffee")[::8, ::8], archive / "b small.png")
    work = tmp_path / "w"
    run_workflow(archive, work, shards=2, cores=1)
    # the report's copy of the pages dates nothing it came from: nothing reruns
    proc = run_workflow(archive, work, shards=2, cores=1, options=["--dry-run"])
    assert "Nothing to be done" in proc.stdout + proc.stderr
    report = tmp_path / "report.zip"
    # as the README says it: no --cores
    cmd = snakemake_cmd(archive, work, 1, ["shards=2"], ["--report", str(report)])
    at = cmd.index("--cores")
    proc = subprocess.run(cmd[:at] + cmd[at + 2 :], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(report) as z:
        names = z.namelist()
        z.extractall(tmp_path / "unzipped")
    (index,) = [n for n in names if n.endswith("/identical.html")]
    pages = (tmp_path / "unzipped" / index).parent
    assert len([n for n in names if "/thumbs/" in n]) == 3  # the 3 contents shown
    shots = tmp_path / "shots"
    shots.mkdir()
    proc = subprocess.run(
        ["node", str(BROWSER / "check_report.mjs"), str(pages), str(shots)]
        + ["identical.html", "transform_resize.html"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["errors"] == []
    for name, page in out["pages"].items():
        assert page["images"] >= 2 and page["broken"] == [], (name, page)
        assert page["loaded"] == page["images"], name
