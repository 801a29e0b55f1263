"""config.yaml's `matching:` section as the parameter records the code uses.

The dataclass defaults are the documented defaults; `config.yaml` mirrors them
(tests/test_config.py checks they agree), and every threshold is reachable there.
"""

from __future__ import annotations

from .geometry import GeoParams
from .match import MatchParams
from .retrieval import RetrievalParams
from .verify import VerifyParams


def retrieval_params(matching: dict) -> RetrievalParams:
    """Candidate thresholds from the `matching:` section."""
    return RetrievalParams(
        max_hamming=int(matching["max_hamming"]),
        max_quarter_hamming=int(matching["max_quarter_hamming"]),
        min_quarters=int(matching["min_quarters"]),
        max_tone_hamming=int(matching["max_tone_hamming"]),
        tone_max_words=int(matching["tone_max_words"]),
        max_speck_hamming=int(matching["max_speck_hamming"]),
        min_shared_specks=int(matching["min_shared_specks"]),
        query_features=int(matching["query_features"]),
        min_votes=int(matching["min_votes"]),
        min_coverage=float(matching["min_coverage"]),
        min_cells=int(matching["min_cells"]),
        common_df=int(matching["common_df"]),
        common_ratio=float(matching["common_ratio"]),
        max_candidates=int(matching["max_candidates"]),
    )


def verify_params(matching: dict) -> VerifyParams:
    """Pixel-check thresholds from `matching: verify:`."""
    v = matching["verify"]
    c = v["colour_change"]
    return VerifyParams(
        compare_size=int(v["compare_size"]),
        max_block_ratio=float(v["max_block_ratio"]),
        max_colour_ratio=float(v["max_colour_ratio"]),
        tone_tol=float(c["tone_tol"]),
        max_gain_change=float(c["max_gain_change"]),
        saturation_tol=float(c["saturation_tol"]),
        hue_tol=float(c["hue_tol"]),
        min_chroma=float(c["min_chroma"]),
        max_capture_motion=float(v["max_capture_motion"]),
        max_capture_motion_two=float(v["max_capture_motion_two"]),
    )


def geo_params(matching: dict) -> GeoParams:
    """Geometric-stage thresholds from `matching: geometry:` and `verify:`."""
    g = matching["geometry"]
    return GeoParams(
        ratio=float(g["ratio"]),
        min_inliers=int(g["min_inliers"]),
        reproj_frac=float(g["reproj_frac"]),
        min_overlap=float(g["min_overlap"]),
        max_block_ratio=float(matching["verify"]["warped_max_block_ratio"]),
        accept_on_geometry=bool(g["accept_on_geometry"]),
        strong_inliers=int(g["strong_inliers"]),
        strong_inlier_ratio=float(g["strong_inlier_ratio"]),
        related_min_inliers=int(g["related_min_inliers"]),
        related_min_hull=float(g["related_min_hull"]),
        related_min_area=float(g["related_min_area"]),
        verify=verify_params(matching),
    )


def match_params(matching: dict, inputs: dict | None = None) -> MatchParams:
    """Everything a match_chunk job decides with."""
    return MatchParams(
        retrieval=retrieval_params(matching),
        min_texture_corr=float(matching["min_texture_corr"]),
        verify=verify_params(matching),
        geo=geo_params(matching) if matching["geometric"] else None,
        inputs=dict(inputs or {}),
    )
