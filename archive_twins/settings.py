"""config.yaml as the parameter records the code uses: the per-file stage's
(`decode_params`, `feature_params`) and the `matching:` section's.

The dataclass defaults are the documented defaults; `config.yaml` and the schema's
defaults mirror them (tests/test_config.py checks they agree), and every field of
the records is reachable there, or named in `INTERNAL` with the reason it is not.
"""

from __future__ import annotations

from collections.abc import Mapping

from .index.params import RetrievalParams
from .ingest.decode import DecodeParams
from .ingest.features import FeatureParams
from .verify.geometry import GeoParams
from .verify.match import MatchParams
from .verify.pixels import VerifyParams

# Fields of MatchParams (dotted) that config.yaml does not set, and why: how a
# method measures, not what it decides (tests/test_config.py checks that every other
# field is set from config.yaml).
INTERNAL = {
    "inputs": "fingerprints of the thumbnails and features, set by the job",
    "retrieval.angle_bins": "the word search's orientation bins: part of the method",
    "retrieval.scale_bin": "the word search's scale bins: part of the method",
    "retrieval.batch_votes": "memory of one query batch, not a decision",
    "retrieval.batch_cells": "memory of one query batch, not a decision",
    "verify.grid": "the pixel check's blocks: its thresholds were fitted with them",
    "verify.noise_floor": "the pixel check's noise floor, fitted with its thresholds",
    "geo.verify.grid": "as verify.grid",
    "geo.verify.noise_floor": "as verify.noise_floor",
    "geo.dense_sides": "the sizes the grey-level alignment works at",
    "geo.dense_homography_gain": "when the grey-level alignment prefers a homography",
    "geo.dense_good_corr": "when the grey-level alignment stops trying (a shortcut)",
    "geo.dense_max_aspect_change": "the grey-level alignment's search range",
}


def decode_params(decode: Mapping) -> DecodeParams:
    """The per-file stage's settings (config `thumb_size`, `thumb_quality`,
    `max_pixels`), as the decode and the matching jobs both key their caches."""
    return DecodeParams(**{k: int(v) for k, v in dict(decode).items()})


def feature_params(features: Mapping, thumbs: DecodeParams) -> FeatureParams:
    """The features' settings (config `features.max_side`, `features.n_features`),
    keyed also by the thumbnails they are extracted from."""
    return FeatureParams(
        max_side=int(features["max_side"]),
        n_features=int(features["n_features"]),
        thumbs=thumbs.fingerprint(),
    )


def retrieval_params(matching: dict) -> RetrievalParams:
    """Candidate thresholds from the `matching:` section."""
    return RetrievalParams(
        max_hamming=int(matching["max_hamming"]),
        max_quarter_hamming=int(matching["max_quarter_hamming"]),
        min_quarters=int(matching["min_quarters"]),
        max_tone_hamming=int(matching["max_tone_hamming"]),
        tone_max_words=int(matching["tone_max_words"]),
        min_shared_specks=int(matching["min_shared_specks"]),
        min_speck_share=float(matching["min_speck_share"]),
        query_features=int(matching["query_features"]),
        min_votes=int(matching["min_votes"]),
        min_coverage=float(matching["min_coverage"]),
        min_cells=int(matching["min_cells"]),
        common_df=int(matching["common_df"]),
        common_ratio=float(matching["common_ratio"]),
        max_candidates=int(matching["max_candidates"]),
        max_hash_candidates=int(matching["max_hash_candidates"]),
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
        min_copy_cover=float(g["min_copy_cover"]),
        dense_min_corr=float(g["dense_min_corr"]),
        dense_min_blocks=int(g["dense_min_blocks"]),
        verify=verify_params(matching),
    )


def match_params(matching: dict, inputs: dict | None = None) -> MatchParams:
    """Everything a match_chunk job decides with."""
    return MatchParams(
        retrieval=retrieval_params(matching),
        max_orientations=int(matching["max_orientations"]),
        min_tone_corr=float(matching["min_tone_corr"]),
        min_texture_corr=float(matching["min_texture_corr"]),
        verify=verify_params(matching),
        geo=geo_params(matching) if matching["geometric"] else None,
        inputs=dict(inputs or {}),
    )
