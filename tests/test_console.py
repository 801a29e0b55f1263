"""The `archive-twins` command: run from another working directory, status of a running
and of a finished run, open."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive_twins.console import main, read_status
from archive_twins.demo import photo, save
from archive_twins.progress import Progress, parse_progress

SCRIPT = Path(sys.executable).parent / "archive-twins"


def _small_archive(root: Path) -> None:
    a = photo("astronaut")[::4, ::4]
    save(a, root / "a.png")
    save(a, root / "sub" / "a copy.png")
    save(photo("coffee")[::4, ::4], root / "b.jpg")
    save(photo("coffee")[::8, ::8], root / "b small.png")  # a resized copy


@pytest.mark.e2e
def test_run_status_open_from_another_directory(tmp_path):
    assert SCRIPT.exists(), "the console script is installed with the package"
    _small_archive(tmp_path / "archive")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.Popen(
        [str(SCRIPT), "run", "../archive", "--results", "out", "--cores", "1"],
        cwd=elsewhere,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # status while it runs: polled until the run note says running
    seen = None
    while proc.poll() is None and seen is None:
        if (elsewhere / "out" / "manifest").is_dir():
            st = subprocess.run(
                [str(SCRIPT), "status", "out"], cwd=elsewhere, capture_output=True, text=True
            )
            if "run: running" in st.stdout:
                seen = st.stdout
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=600)
    run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    assert seen is not None, "status never saw the run running"
    assert re.search(r"files decoded: [0-4] of 4 \([0-9]+ of 16 shards done\)", seen), seen
    assert re.search(r"matching chunks done: [0-4] of 4", seen), seen
    page = elsewhere / "out" / "html" / "index.html"
    assert f"overview page: {page}" in run.stdout
    assert page.is_file()
    con = json.loads((elsewhere / "out" / "json" / "identical_list.json").read_text())
    assert len(con) == 2  # a.png and its copy
    _check_csv(elsewhere / "out" / "csv")
    status = subprocess.run(
        [str(SCRIPT), "status", "out"], cwd=elsewhere, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert "run: finished" in status.stdout
    assert "files decoded: 4 of 4" in status.stdout
    assert "errors so far: 0" in status.stdout
    assert "  copies by kind: 1 (resize 1)" in status.stdout
    assert f"  overview page: {page}" in status.stdout
    # the run itself ended with the same block
    assert "  identical sets: 1 (of 2 files 1)" in run.stderr
    opened = subprocess.run(
        [str(SCRIPT), "open", "out", "--no-browser"], cwd=elsewhere, capture_output=True, text=True
    )
    assert opened.stdout.strip() == str(page)


def _check_csv(csv_dir: Path) -> None:
    """csv/ beside json/: each file_id with its filename, for spreadsheets."""
    read = {p.name: list(csv.reader(p.open(encoding="utf-8"))) for p in csv_dir.glob("*.csv")}
    assert {"copy_pairs.csv", "identical_list.csv", "same_pixels_list.csv"} <= read.keys()
    assert read["identical_list.csv"] == [
        ["identical_set_id", "file_id", "filename"],
        ["1", read["identical_list.csv"][1][1], "a.png"],
        ["1", read["identical_list.csv"][2][1], "sub/a copy.png"],
    ]
    header, *rows = read["copy_pairs.csv"]
    assert header[:5] == ["file_id1", "filename1", "file_id2", "filename2", "kind"]
    assert [(r[1], r[3], r[4]) for r in rows] == [("b.jpg", "b small.png", "resize")]
    assert read["related_pairs.csv"][0][:4] == ["file_id1", "filename1", "file_id2", "filename2"]


def test_status_of_a_running_run(tmp_path):
    """Three shards: one done in this run, one half-way through (its PROGRESS line),
    one unchanged since an earlier run (not rerun: done, not part of the rate); the
    run's main process is alive (this one)."""
    res = tmp_path / "res"
    for d in ("manifest", "shards", "state/stamps", "logs/decode_shard", "logs/match_chunk"):
        (res / d).mkdir(parents=True)
    started = time.time() - 10
    for shard, n in (("0000", 4), ("0001", 6), ("0002", 5)):
        m = res / "manifest" / f"shard-{shard}.jsonl"
        m.write_text("{}\n" * n)
        os.utime(m, (started - 100, started - 100))
    (res / "shards" / "shard-0000.jsonl").write_text("")  # written in this run
    old = res / "shards" / "shard-0002.jsonl"
    old.write_text("")
    os.utime(old, (started - 50, started - 50))
    old_log = res / "logs" / "decode_shard" / "0002.log"
    old_log.write_text('x INFO archive_twins: STATS {"errors": 2, "files": 5}\n')
    os.utime(old_log, (started - 50, started - 50))
    (res / "state" / "run.json").write_text(
        json.dumps({"state": "running", "pid": os.getpid(), "started": started})
    )
    (res / "logs" / "decode_shard" / "0000.log").write_text(
        'x INFO archive_twins: STATS {"errors": 1, "files": 4}\n'
    )
    log = logging.getLogger("test_console")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(res / "logs" / "decode_shard" / "0001.log")
    log.addHandler(handler)
    try:
        p = Progress(6, log, every_s=0)
        p.step(2)
    finally:
        log.removeHandler(handler)
        handler.close()
    (res / "state" / "stamps" / "match_chunk-0000.json").write_text("{}")
    st = read_status(res, now=started + 10)
    assert (st.state, st.files_total, st.files_done, st.errors) == ("running", 15, 11, 3)
    assert (st.shards_done, st.shards_total, st.chunks_done, st.chunks_total) == (2, 3, 0, 1)
    assert st.rate == pytest.approx(0.6)
    assert st.eta_s == pytest.approx(4 / 0.6)
    text = "\n".join(st.lines())
    assert "files decoded: 11 of 15 (2 of 3 shards done), rate 0.6 files/s, ETA 7 s" in text
    # the run's main process died: said as such
    (res / "state" / "run.json").write_text(
        json.dumps({"state": "running", "pid": 2**22 + 12345, "started": started})
    )
    assert read_status(res).state.startswith("stopped")


def test_progress_line_round_trips(caplog):
    log = logging.getLogger("archive_twins.test")
    with caplog.at_level(logging.INFO, logger="archive_twins.test"):
        p = Progress(10, log, every_s=3600)
        p.step(3)
        p.close()
    (line,) = [r.getMessage() for r in caplog.records]
    fields = parse_progress(line)
    assert (fields["done"], fields["total"], fields["what"]) == (3, 10, "files")
    assert "(3 of 10 files," in line and "ETA" in line


def test_open_and_status_say_what_to_do(tmp_path, capsys):
    assert main(["open", str(tmp_path), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "no overview page" in err and "archive-twins run" in err
    assert main(["status", str(tmp_path)]) == 2
    assert "not a results directory" in capsys.readouterr().err


def test_summary_block_lists_errors_and_skips_empty_families(tmp_path):
    from archive_twins.deliver.report import summary_block

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.tsv").write_text(
        "section\titem\tcount\nfiles\timage files\t5\nfiles\tstatus error\t4\n"
        "copies by kind\tresize\t0\nfamilies\tcopy families\t0\n"
        + "".join(f"errors\treason {i}\t1\n" for i in range(4))
    )
    lines = summary_block(tmp_path)
    assert lines[1] == "  files: image files 5, status error 4"
    assert "  copies by kind: 0" in lines
    assert not any("families" in ln for ln in lines)
    assert "  errors: 4: reason 0 (1); reason 1 (1); reason 2 (1); ... (1 more reasons)" in lines
    assert lines[-1] == f"  overview page: {tmp_path / 'html' / 'index.html'}"


def test_start_of_run_counts_and_estimate():
    from archive_twins.ingest.scan import compare_scans
    from archive_twins.progress import work_estimate

    before = [
        {"path": "a.jpg", "size": 1, "mtime_ns": 5},
        {"path": "b.jpg", "size": 2, "mtime_ns": 5},
        {"path": "gone.jpg", "size": 3, "mtime_ns": 5},
    ]
    now = [
        {"path": "a.jpg", "size": 1, "mtime_ns": 5},
        {"path": "b.jpg", "size": 2, "mtime_ns": 6},
        {"path": "new.jpg", "size": 4, "mtime_ns": 5},
    ]
    assert compare_scans(before, now) == {"new": 1, "changed": 1, "removed": 1, "unchanged": 1}
    assert work_estimate(0, 2, []) == "nothing to decode (every file is unchanged)"
    assert work_estimate(10000, 4, []) == (
        "to decode: 10000 files, roughly 10 min on 4 cores (at 0.25 s per file, a typical rate)"
    )
    history = [{"decoded": 30, "seconds": 3.0}, {"decoded": 0, "seconds": 9.0}]
    assert work_estimate(3600, 1, history) == (
        "to decode: 3600 files, roughly 6 min on 1 cores (at 0.10 s per file, "
        "the rate of earlier runs here)"
    )
