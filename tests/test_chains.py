"""Copies chained across captures of one scene are cut where the related verdicts
say the captures differ; one wrong related verdict does not split a family."""

from __future__ import annotations

import itertools
import random

from archive_twins.deliver.chains import keep_one_capture
from archive_twins.records import CopyRecord


def _verdict(a: str, b: str, kind: str = "other") -> CopyRecord:
    return CopyRecord(
        key1=a, key2=b, kind=kind, scale=1.0, angle=0.0, mirrored=0, crop_x=0.0,
        crop_y=0.0, crop_w=1.0, crop_h=1.0, homography="[]", inliers=None, score=1.0,
    )  # fmt: skip


def _run(copies: dict[tuple[str, str], float], related: list[tuple[str, str]]) -> set:
    recs = [_verdict(a, b) for a, b in copies]
    fit = {frozenset(p): f for p, f in copies.items()}
    kept = keep_one_capture(recs, fit, [_verdict(a, b, "related") for a, b in related])
    return {(c.key1, c.key2) for c in kept}


def test_two_frames_joined_through_their_derivatives_are_cut_apart():
    # frames f1 and f2 of one video, each with its derivatives; a small copy of f2
    # (d2a) also fits f1's derivative d1a, and f2's frame a derivative of f1
    within = {("f1", "d1a"): 0.10, ("f1", "d1b"): 0.12, ("d1a", "d1b"): 0.15, ("f2", "d2a"): 0.11}
    across = {("d1a", "d2a"): 0.30, ("d1b", "f2"): 0.34}
    related = [("f1", "f2"), ("f1", "d2a"), ("d1a", "f2"), ("d1b", "d2a")]
    assert _run({**within, **across}, related) == set(within)


def test_one_wrong_related_verdict_does_not_split_a_family():
    copies = {("s", "a"): 0.1, ("s", "b"): 0.1, ("a", "b"): 0.2, ("b", "c"): 0.2, ("s", "c"): 0.3}
    assert _run(copies, [("a", "c")]) == set(copies)


def test_the_answer_does_not_depend_on_the_order_of_the_verdicts():
    rng = random.Random(3)
    keys = [f"k{i}" for i in range(30)]
    pairs = [p for p in itertools.combinations(keys, 2) if rng.random() < 0.2]
    copies = {p: round(rng.random(), 3) for p in pairs[: len(pairs) // 2]}
    related = pairs[len(pairs) // 2 :]
    want = _run(copies, related)
    for seed in range(5):
        items = list(copies.items())
        random.Random(seed).shuffle(items)
        rel = related[:]
        random.Random(seed).shuffle(rel)
        assert _run(dict(items), rel) == want
