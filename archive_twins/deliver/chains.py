"""Chains of copies across captures of one scene: which copy verdicts stay.

Takes the copy verdicts (each with how well its pixels fit: the worst block after
the colour fit), and the related verdicts (two rasters found to be other captures);
gives the copy verdicts that stay. Frames of a video a moment apart and their
derivatives are joined by copy verdicts that no single pair can refuse (a small
resized copy of one frame fits the next frame as well), so every derivative of one
frame ends up a "copy" of the next frame's. Verdicts are taken best first, and two
groups are joined only while the copy verdicts between them outnumber half the
related verdicts between them; a copy verdict between two groups left apart is
dropped. A function of all the verdicts, so any split of the work and any history
give the same answer (docs/captures.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..records import CopyRecord

# a copy verdict without a measured fit is taken after every measured one
UNMEASURED = 9.0


def keep_one_capture(
    copies: Sequence[CopyRecord],
    fit: Mapping[frozenset, float],
    related: Iterable[CopyRecord],
    ratio: float = 0.5,
) -> list[CopyRecord]:
    """The copies that stay (see the module's docstring); `fit` by unordered pair of
    raster keys, lower is better."""
    copy_n: dict[str, Counter] = {}
    rel_n: dict[str, Counter] = {}
    for table, pairs in ((copy_n, ((c.key1, c.key2) for c in copies)),
                         (rel_n, ((r.key1, r.key2) for r in related))):  # fmt: skip
        for a, b in pairs:
            if a != b:
                table.setdefault(a, Counter())[b] += 1
                table.setdefault(b, Counter())[a] += 1
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        root = k
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(k, k) != root:
            parent[k], k = root, parent[k]
        return root

    def join(a: str, b: str) -> None:
        """Group b into group a, their counts with every other group added up."""
        parent[b] = a
        for table in (copy_n, rel_n):
            for other, n in table.pop(b, Counter()).items():
                other = find(other)
                if other == a:
                    continue
                table.setdefault(a, Counter())[other] += n
                table.setdefault(other, Counter())[a] += n
                table[other].pop(b, None)
            if a in table:
                table[a].pop(b, None)

    def size(k: str) -> int:
        return len(copy_n.get(k, ())) + len(rel_n.get(k, ()))

    def order(c: CopyRecord) -> tuple:
        return (fit.get(frozenset((c.key1, c.key2)), UNMEASURED), *sorted((c.key1, c.key2)))

    for c in sorted(copies, key=order):
        a, b = find(c.key1), find(c.key2)
        if a == b:
            continue
        ties = copy_n.get(a, Counter())[b]
        if ties > ratio * rel_n.get(a, Counter())[b]:
            if size(a) < size(b):
                a, b = b, a
            join(a, b)
    return [c for c in copies if find(c.key1) == find(c.key2)]
