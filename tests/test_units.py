"""Unit tests of decisions that end-to-end runs only cover indirectly: dihedral tables
and snapping, verdict keys, the copy tables, related pairs."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from archive_twins.deliver.aggregate import copy_tables, load_copies, related_table
from archive_twins.dihedral import (
    COMPOSE,
    INVERSE,
    dihedral,
    dihedral_homography,
    nearest_dihedral,
)
from archive_twins.index.items import Item, chunk_of
from archive_twins.records import CopyRecord
from archive_twins.util import write_jsonl
from archive_twins.verify.match import MatchParams, verdict_key


def test_compose_and_inverse_tables_agree_with_the_arrays():
    probe = np.arange(12).reshape(3, 4)
    for a in range(8):
        assert (dihedral(dihedral(probe, a), INVERSE[a]) == probe).all()
        for b in range(8):
            assert (dihedral(dihedral(probe, a), b) == dihedral(probe, COMPOSE[a][b])).all()


@pytest.mark.parametrize("o", range(8))
def test_a_fit_near_a_dihedral_transform_snaps_to_it(o):
    src, k, m = (400, 300), o % 4, o // 4
    dst = (300, 400) if k % 2 else (400, 300)
    exact = dihedral_homography(src, dst, o)
    noisy = exact + np.array([[1e-3, -1e-3, 0.5], [1e-3, 1e-3, -0.5], [0, 0, 0]])
    got, err = nearest_dihedral(noisy, src, dst, 90 * k + 2.0, bool(m))
    assert got == o and err < 0.01
    far = exact @ np.array([[1, 0, 40.0], [0, 1, 0], [0, 0, 1]])  # shifted by 10 %
    assert nearest_dihedral(far, src, dst, 90 * k, bool(m))[1] > 0.05


def _item(key: str, sha: str = "s" * 64) -> Item:
    return Item(key=key, sha256=sha, width=100, height=80, bits=8, format="png", size_bytes=1)


def test_verdict_key_changes_with_every_input():
    x, y, fp = _item("a" * 40), _item("b" * 40), MatchParams().fingerprint()
    base = verdict_key("geo", x, y, [7, False], fp)
    assert base == verdict_key("geo", x, y, [7, False], fp)
    others = [
        verdict_key("phash", x, y, [7, False], fp),
        verdict_key("geo", _item("a" * 40, "t" * 64), y, [7, False], fp),  # other file
        verdict_key("geo", x, y, [8, False], fp),  # other evidence
        verdict_key("geo", x, y, [7, True], fp),
        verdict_key("geo", x, y, [7, False], MatchParams(inputs={"decode": "x"}).fingerprint()),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_chunk_of_is_a_range_of_hash_prefixes():
    keys = [f"{v:08x}" + "0" * 32 for v in (0, 2**31 - 1, 2**31, 2**32 - 1)]
    assert [chunk_of(k, 2) for k in keys] == [0, 0, 1, 1]
    assert [chunk_of(k, 1) for k in keys] == [0, 0, 0, 0]


def _copy(k1: str, k2: str, kind: str, **kw: object) -> dict:
    """A copy record in its JSON form (as the matching jobs write it)."""
    c = {
        "key1": k1,
        "key2": k2,
        "kind": kind,
        "scale": 0.5,
        "angle": 90.0 if kind == "rotate90i" else 0.0,
        "mirrored": 0,
        "crop_x": 0.0,
        "crop_y": 0.0,
        "crop_w": 100.0,
        "crop_h": 80.0,
        "homography": "[[1,0,0],[0,1,0],[0,0,1]]",
        "inliers": None,
        "score": 0.9,
        "method": "phash",
        "area_fraction": 0.25 if kind == "other" else 1.0,
        "colour_change": False,
    }
    c.update(kw)
    return c


def test_copy_tables_parameters_per_kind_and_vanished_rasters():
    rep = {"a": 1, "b": 2, "c": 3, "d": 4}
    copies = [
        _copy("a", "b", "resize"),
        _copy("a", "c", "rotate90i"),
        _copy("c", "d", "other"),
        _copy("a", "gone", "resize"),
    ]
    # the tables are kept in the aggregation's duckdb and read back in batches
    t = copy_tables(duckdb.connect(), [CopyRecord.from_dict(c) for c in copies], rep)
    assert [r[:3] for r in t["copy_pairs"]] == [
        (1, 2, "resize"),
        (1, 3, "rotate90i"),
        (3, 4, "other"),
    ]
    assert list(t["transform_resize"]) == [(1, 2, 0.5)]  # the scale
    assert list(t["transform_rotate90i"]) == [(1, 3, 90.0)]  # the angle
    assert list(t["transform_other"]) == [(3, 4, 0.25)]  # the area fraction


def test_a_pair_is_a_copy_or_related_never_both(tmp_path):
    related = _copy("a", "b", "related", inliers=50, reason="pixels differ", metrics={})
    write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"meta": {}},
            {"pair": ["a", "b"], "copy": None, "related": related},
            {"pair": ["c", "d"], "copy": _copy("c", "d", "other")},
        ],
    )
    copies, rel = load_copies([str(tmp_path / "c.jsonl")])
    assert [(c.key1, c.key2) for c in copies] == [("c", "d")]
    rows = related_table(rel, {"a": 1, "b": 2})
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [(1, 2, 50, "pixels differ")]


def test_every_cache_key_uses_one_fingerprint_form():
    """Each settings record's fingerprint is `tag:digest` from util.fingerprint, and
    changing any of its fields changes it (so no setting can be left out of a key)."""
    import dataclasses

    from archive_twins.index.params import RetrievalParams
    from archive_twins.ingest.decode import DecodeParams
    from archive_twins.ingest.features import FeatureParams
    from archive_twins.verify.geometry import GeoParams
    from archive_twins.verify.match import MatchParams

    for cls in (DecodeParams, FeatureParams, GeoParams, RetrievalParams, MatchParams):
        base = cls()
        tag, digest = base.fingerprint().split(":")
        assert tag and len(digest) == 16
        for f in dataclasses.fields(cls):
            if f.name in ("batch_votes", "batch_cells"):  # work sizes, not results
                continue
            value = getattr(base, f.name)
            if isinstance(value, bool):
                changed = not value
            elif isinstance(value, int | float):
                changed = value + 1
            elif isinstance(value, str):
                changed = value + "x"
            elif isinstance(value, dict):
                changed = {**value, "x": 1}
            elif isinstance(value, tuple):
                changed = (*value, 1)
            elif value is None:
                continue
            else:  # a nested settings record
                inner = dataclasses.fields(value)[0]
                changed = dataclasses.replace(value, **{inner.name: getattr(value, inner.name) + 1})
            other = dataclasses.replace(base, **{f.name: changed})
            assert other.fingerprint() != base.fingerprint(), (cls.__name__, f.name)
