"""The candidate settings of the index and its queries.

Takes nothing; gives `RetrievalParams` (read from the config by `settings`), whose
fingerprint enters the index's and the verdicts' cache keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..util import fingerprint


@dataclass(frozen=True)
class RetrievalParams:
    """Candidate thresholds (fitted on scikit-image photographs and half of the
    development photographs; see docs/design.md, Matching)."""

    # pHash Hamming distance (of 64 bits) in any of the 8 orientations
    max_hamming: int = 12
    # ... and alike in at least `min_quarters` of the four quarters of the frame
    # (pHash of each, `hashing.quarter_hashes`, within max_quarter_hamming bits): a
    # copy looks like its source all over, two photographs sharing a caption strip or
    # a chart only where it is (measured in docs/furniture.md)
    max_quarter_hamming: int = 20
    min_quarters: int = 3
    # tone hash (hashing.tone_hashes) distance, for pairs with a smooth raster: one
    # with fewer than `tone_max_words` distinct strong words (`Index.smooth`), where
    # the features have little to go on and pHash bits flip under colour and tone
    # changes
    max_tone_hamming: int = 4
    tone_max_words: int = 150
    # a pair of plain rasters (texture.is_plain: versos, empty sheets), whose tones
    # are any paper's, is a candidate by its specks instead: at least this many of
    # one's specks within a cell (of 256x256) of the other's, and this share of the
    # fewer specks of the two (measured on 1,435 plain rasters: 362 of 364 rescan
    # pairs pass, none of 1,028,531 pairs of different versos; docs/furniture.md),
    # with its tone hashes within max_tone_hamming in the same orientation
    min_shared_specks: int = 3
    min_speck_share: float = 0.5
    # the strongest keypoints of the querying raster whose words are looked up
    query_features: int = 150
    # consistent votes (shared words in the best orientation/scale bin)
    min_votes: int = 5
    # ... lying in this share of the cells of a 4x4 grid of the querying raster's
    # frame that hold its query keypoints (at least min_cells of them): a copy
    # covers its own frame, a shared colour chart or caption a corner or a strip
    # (wordsearch; measured in docs/furniture.md)
    min_coverage: float = 0.3
    min_cells: int = 3
    # a word held by more rasters than this is common (the words of a colour chart,
    # a ruler or a logo in many photographs): it neither votes nor counts for
    # coverage, and its postings are never read. The bound grows with the archive,
    # so that an ordinary word stays below it: `common_ratio` times the mean number
    # of rasters holding a word, rounded up to a power of two (so it moves seldom,
    # and a rerun seldom searches again for that reason), at least `common_df`
    common_df: int = 16
    common_ratio: float = 20.0
    # at most this many rasters are word candidates of one querying raster: those
    # with the most votes, then the first by pixel hash (a safety valve, logged when
    # it bites: with common words out, only an image copied hundreds of times fills
    # it; no archive makes the search quadratic)
    max_candidates: int = 500
    # at most this many later rasters are hash candidates of one raster: the nearest
    # by pHash, then the first in the index (logged when it bites: only an image with
    # hundreds of near-copies fills it; `cap_hash`)
    max_hash_candidates: int = 500
    # orientation bins over 360 degrees and scale bin width in quarter octaves
    angle_bins: int = 16
    scale_bin: int = 2
    # working set of one query batch (votes gathered at once; counts array cells):
    # the postings a batch reads stay resident until it ends, so smaller batches
    # hold less (a 262k chunk: 4M / 16M cells peaked at 760 MB, 1M / 4M at 361 MB,
    # in the same CPU time)
    batch_votes: int = 1_000_000
    batch_cells: int = 1 << 22

    def fingerprint(self) -> str:
        """What changes the candidate set (batch sizes do not)."""
        d = asdict(self)
        d.pop("batch_votes")
        d.pop("batch_cells")
        return fingerprint("retrieval-1", d)
