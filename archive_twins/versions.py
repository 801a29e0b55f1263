"""What the code of each per-file stage produces, by version.

Takes nothing; gives the version tags that enter the stages' cache keys (each
record and signature carries its fingerprint, and is redone when it differs) and
the ledger's job digests (`prepare.plan`), so that a new version of the decode or
feature code reruns the shard jobs once, with no setting changed. Kept apart from
`decode` and `features` so that the main process reads them without importing
libvips or OpenCV.
"""

from __future__ import annotations

# v4: thumbnails colour-managed through the embedded ICC profile; v5: tone hashes;
# v6: JPEG quality; v7: its estimate leaves out clamped table entries; v8: content
# hashes; v9: quarter pHashes; v10: the pixel hash is BLAKE3 (5x faster than blake2b)
DECODE = "decode-v10"
# sift4: query ranks balanced over the frame; sift5: weak keypoints fill a smooth
# raster's budget; sift6: each word's position in the frame; sift7: speck cells of
# a fine grid instead of an 8x8 speck hash
FEATURES = "sift7"
