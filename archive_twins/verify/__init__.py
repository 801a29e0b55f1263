"""Verify: a chunk's candidates in, its verdicts out.

Takes the index (`index.query.Index`), the thumbnails and the signatures. Gives,
per candidate pair, a verdict (`match`: cached by key): a pixel check of aligned
thumbnails (`pixels`, with the 8 orientations of `dihedral`), a fitted homography
(`geometry`, its helpers in `homography`), whether an accepted pair is another
capture (`capture`), and which one is the source (`direction`, which also breaks
ties at aggregation). Nothing is imported here: OpenCV loads with the module that
needs it.
"""
