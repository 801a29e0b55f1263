"""Whatever the history of an archive (files added in random increments, some
removed, one overwritten), the incremental result equals a fresh run's, table by
table; and how the work is split (shards, chunks, cores) never changes the answer."""

from __future__ import annotations

import pytest
from conftest import canonical, read_json_tables, run_workflow
from history import build_universe, compare_with_fresh, play

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    root = tmp_path_factory.mktemp("universe")
    return root, build_universe(root)


def test_incremental_history_equals_fresh_run(universe, tmp_path):
    root, files = universe
    live, work = tmp_path / "live", tmp_path / "work"
    live.mkdir()
    config = {"shards": 5, "extra": ["match_chunks=3"]}
    log = play(root, files, live, seed=1, run=lambda: run_workflow(live, work, **config))
    assert log["removed"] and log["changed"]
    same = compare_with_fresh(live, work, tmp_path / "fresh", **config)
    assert all(same.values()), {k: v for k, v in same.items() if not v}
    pairs = read_json_tables(work / "results" / "json")["copy_pairs"]
    assert {p["kind"] for p in pairs} == {"resize", "rotate90i", "other"}
    assert any(p["method"] == "sift" for p in pairs)  # the geometric stage took part


def test_split_does_not_change_the_answer(universe, tmp_path):
    root, _ = universe
    a, b = tmp_path / "a", tmp_path / "b"
    run_workflow(root, a, shards=1, cores=1, extra=["match_chunks=1"])
    run_workflow(root, b, shards=7, cores=2, extra=["match_chunks=9"])
    ta = canonical(read_json_tables(a / "results" / "json"))
    tb = canonical(read_json_tables(b / "results" / "json"))
    for name in ta:
        assert ta[name] == tb[name], name
    assert len(ta["copy_pairs"]) > 40
