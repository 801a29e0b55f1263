"""`snakemake --report` gives a user something real: the workflow description, the
run summary and the review pages."""

from __future__ import annotations

import csv
import zipfile

import pytest
from conftest import run_workflow

from archive_twins.demo import build_demo_archive

pytestmark = pytest.mark.e2e


def test_report_builds_with_summary_and_pages(tmp_path):
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    work = tmp_path / "work"
    run_workflow(archive, work, shards=2)
    rows = list(csv.DictReader((work / "results/report/summary.tsv").open(), delimiter="\t"))
    got = {(r["section"], r["item"]): int(r["count"]) for r in rows}
    assert got[("files", "image files")] >= 10
    assert got[("copies by kind", "rotate90i")] >= 2
    assert any(s == "errors" for s, _ in got)
    report = tmp_path / "report.zip"
    run_workflow(archive, work, shards=2, options=["--report", str(report)])
    with zipfile.ZipFile(report) as z:
        names = z.namelist()
        assert any(n.endswith("summary.tsv") for n in names), names
        assert any(n.endswith("/transform_rotate90i.html") for n in names), names  # pages
        main = next(n for n in names if n.endswith("report.html"))
        assert "archive-twins finds the twins" in z.read(main).decode()
