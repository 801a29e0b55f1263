"""Matching at archive scale: index + chunk jobs on 10k / 50k / 262k rasters.

Decoding 262,000 files is not needed to measure matching: this builds what the
decode stage would have left behind (per-shard records and signature bundles,
thumbnails, per-content features) and runs the real `index` and `match_chunk` code
on it, each job in its own process so its peak RSS and CPU time are its own.

- Planted copies: real photographs (scikit-image's and half of the development
  photographs) and real derivatives of them (crops of 30-90 % off-centre, rotations
  of 2-25 degrees, perspective, hue / greyscale / gamma / contrast changes, resize,
  rotation by 90 degrees, mirror, JPEG q15), decoded, thumbnailed and described
  exactly as the workflow does.
- Other images: the rest. Each one's signature is 400 keypoints drawn at random from
  the keypoints of ~220 real photographs (real word and scale statistics; orientation
  drawn apart; a calibrated share of words recombined from two keypoints' half
  words, so that two synthetic images share as many words as two real unrelated
  photographs do: a pool this small repeats words far more than a real archive), its
  pHashes those of a pool photograph with 20
  random bits flipped per orientation, and its thumbnail and features those of a pool
  photograph (symlinks), so a false candidate costs a real verification.

With --chart SHARE, that share of the other images also holds the same printed
colour target and ruler (`tests/furniture.py`): the keypoints a real photograph with
the chart pasted in a lower corner has on the chart (words, orientations, scales and
places), at a random lower corner and a scale of +-7 %, in place of as many of its
own: what museum photographs share, at archive scale.

Printed per size: per-stage CPU seconds (index, all chunks; with --sample-chunks at
large sizes, a sample of chunks evenly spread and the total extrapolated), peak RSS
of every job, candidates per image, recall of planted copies, and the cost of a rerun
after adding 1 % new images (index + chunk reruns, which search only new pairs).

    python bench/scale_bench.py [--sizes 10000 50000 262000] [--workdir DIR] [--chart 0.3]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

UKBENCH = REPO.parent / "shared" / "data" / "ukbench-dev"


def _rusage() -> dict:
    """CPU seconds and peak RSS of this process. The peak is the memory map's own
    high-water mark (VmHWM): Linux carries ru_maxrss across exec, so a job started
    from a large parent would report the parent's size."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = r.ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_s": round(r.ru_utime + r.ru_stime, 2), "peak_rss_mb": round(peak_kb / 1024)}


# ---------------------------------------------------------------- the photo pool


def _photos() -> dict[str, object]:
    import cv2

    from archive_twins.demo import PHOTOS, photo

    out = {}
    for name in [*PHOTOS, "motorcycle_left", "cat", "horse", "clock", "page", "text"]:
        out[f"sk-{name}"] = photo(name)
    for path in sorted(glob.glob(str(UKBENCH / "*.jpg"))):
        out[f"uk-{Path(path).stem}"] = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    return out


def derivatives(img):  # noqa: ANN201
    """Real derivatives of one photograph: name -> image."""
    import cv2
    import numpy as np

    from archive_twins.dihedral import dihedral

    h, w = img.shape[:2]
    out = {}
    for frac, (fx, fy) in ((0.3, (0.1, 0.55)), (0.6, (0.35, 0.1)), (0.9, (0.02, 0.04))):
        cw, ch = round(w * frac**0.5), round(h * frac**0.5)
        x0, y0 = round((w - cw) * fx / 0.6), round((h - ch) * fy / 0.6)
        x0, y0 = min(x0, w - cw), min(y0, h - ch)
        out[f"crop{round(frac * 100)}"] = img[y0 : y0 + ch, x0 : x0 + cw]
    for deg in (2, 12, 25):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        out[f"rot{deg}"] = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[w * 0.08, h * 0.05], [w * 0.95, 0], [w, h], [0, h * 0.9]])
    out["perspective"] = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h))
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 30) % 180
    out["hue"] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out["grey"] = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    out["gamma16"] = (255 * (img / 255.0) ** 1.6).astype(np.uint8)
    out["contrast"] = np.clip((img.astype(np.float32) - 128) * 1.4 + 128, 0, 255).astype(np.uint8)
    out["resize30"] = cv2.resize(
        img, (round(w * 0.3), round(h * 0.3)), interpolation=cv2.INTER_AREA
    )
    out["rot90"] = dihedral(img, 1)
    out["mirror"] = dihedral(img, 4)
    enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 15])
    out["q15"] = cv2.cvtColor(cv2.imdecode(enc[1], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _describe_into(img, name: str, store: Path, feat_store: Path) -> dict:  # noqa: ANN001
    """Thumbnail, features and pHashes of one image, stored as decode_shard would."""
    import cv2
    import numpy as np

    from archive_twins.ingest.features import FeatureParams, describe, raster_path
    from archive_twins.ingest.hashing import dihedral_hashes
    from archive_twins.records import thumb_path

    fp = FeatureParams()
    h, w = img.shape[:2]
    f = min(1.0, 800 / max(h, w))
    thumb = img if f >= 1 else cv2.resize(img, (round(w * f), round(h * f)), cv2.INTER_AREA)
    sha = hashlib.sha256(name.encode()).hexdigest()
    tp = thumb_path(store, sha)
    tp.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(tp), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    thumb = cv2.cvtColor(cv2.imread(str(tp)), cv2.COLOR_BGR2RGB)
    feats = describe(thumb, (w, h), fp)
    rp = raster_path(feat_store, sha)
    rp.parent.mkdir(parents=True, exist_ok=True)
    with open(rp, "wb") as fh:
        np.savez(fh, **feats, params=np.array(fp.fingerprint()))
    return {
        "name": name,
        "sha": sha,
        "key": hashlib.blake2b(name.encode(), digest_size=20).hexdigest(),
        "width": w,
        "height": h,
        **dict(zip(("phash", "tone_hash"), dihedral_hashes(thumb), strict=True)),
        "feats": feats,
    }


def build_pool(pool: Path) -> None:
    """Pool photographs and planted copies, described once for every size."""
    import numpy as np

    from archive_twins.ingest.features import angle_code, position_code, quantise, scale_code
    from archive_twins.ingest.features import mirror_descriptors as mirror

    if (pool / "done").exists() and (pool / "chart.npz").exists():
        return
    shutil.rmtree(pool, ignore_errors=True)
    store, feat_store = pool / "thumbs", pool / "features"
    photos = _photos()
    meta = {"pool": [], "planted": [], "pairs": []}
    kp = {"w": [], "mw": [], "a": [], "ma": [], "s": [], "p": [], "mp": []}
    for name, img in photos.items():
        d = _describe_into(img, "pool-" + name, store, feat_store)
        f = d.pop("feats")
        wh = (d["width"], d["height"])
        kp["w"].append(quantise(f["desc"]))
        kp["mw"].append(quantise(mirror(f["desc"])))
        kp["a"].append(angle_code(f["angle"]))
        kp["ma"].append(angle_code((180.0 - f["angle"]) % 360.0))
        kp["s"].append(scale_code(f["size"]))
        kp["p"].append(position_code(f["xy"], wh))
        kp["mp"].append(position_code(np.c_[wh[0] - f["xy"][:, 0], f["xy"][:, 1]], wh))
        meta["pool"].append(d)
    off = np.concatenate([[0], np.cumsum([len(w) for w in kp["w"]])])
    np.savez(pool / "keypoints.npz", off=off, **{k: np.concatenate(v) for k, v in kp.items()})
    # planted: scikit-image photographs and every other development group
    sources = [n for n in photos if n.startswith("sk-")]
    sources += [n for n in photos if n.startswith("uk-")][::8]
    for name in sources:
        src = _describe_into(photos[name], "src-" + name, store, feat_store)
        src.pop("feats")
        meta["planted"].append(src)
        for kind, img in derivatives(photos[name]).items():
            d = _describe_into(img, f"der-{name}-{kind}", store, feat_store)
            d.pop("feats")
            d["kind"] = kind
            meta["planted"].append(d)
            meta["pairs"].append([src["key"], d["key"], kind])
    meta["recombine"] = _calibrate(pool)
    _chart_keypoints(pool)
    (pool / "meta.json").write_text(json.dumps(meta))
    (pool / "done").write_text("")


def _chart_keypoints(pool: Path) -> None:
    """The keypoints a photograph with the printed target pasted in (tests/furniture)
    has on the target: words, orientation and scale codes, and places relative to
    the target's box."""
    import cv2
    import numpy as np
    from furniture import chart, procedural_photo

    from archive_twins.ingest.features import FeatureParams, angle_code, describe, scale_code

    img = procedural_photo(99, (640, 480))
    c = cv2.resize(chart(), (192, 144), interpolation=cv2.INTER_AREA)
    x0, y0 = 20, 480 - 144 - 20
    img[y0 : y0 + 144, x0 : x0 + 192] = c
    f = describe(img, (640, 480), FeatureParams())
    inside = (
        (f["xy"][:, 0] >= x0) & (f["xy"][:, 0] < x0 + 192)
        & (f["xy"][:, 1] >= y0) & (f["xy"][:, 1] < y0 + 144)
    )  # fmt: skip
    from archive_twins.ingest.features import mirror_descriptors, quantise

    np.savez(
        pool / "chart.npz",
        w=quantise(f["desc"][inside]),
        mw=quantise(mirror_descriptors(f["desc"][inside])),
        a=angle_code(f["angle"][inside]),
        ma=angle_code((180.0 - f["angle"][inside]) % 360.0),
        s=scale_code(f["size"][inside]),
        # place in the target's box (0..1) and the box's size in the frame
        rx=(f["xy"][inside, 0] - x0) / 192,
        ry=(f["xy"][inside, 1] - y0) / 144,
        box=np.array([192 / 640, 144 / 480]),
        share=np.array(inside.mean()),
    )


def _calibrate(pool: Path, query: int = 150) -> dict:
    """How often a drawn keypoint's word is recombined from two pool keypoints' half
    words, so that two synthetic images share as many words as two real unrelated
    photographs do (a pool of ~220 photographs repeats words far more than 262,000
    real ones would). Real rate: every pair of pool photographs, strongest `query`
    words against all."""
    import numpy as np

    kp = np.load(pool / "keypoints.npz")
    off = kp["off"]
    q = [np.unique(kp["w"][off[i] : min(off[i] + query, off[i + 1])]) for i in range(len(off) - 1)]
    t = [np.unique(kp["w"][off[i] : off[i + 1]]) for i in range(len(off) - 1)]
    real = np.mean(
        [len(np.intersect1d(q[i], t[j])) for i in range(len(q)) for j in range(len(t)) if i != j]
    )
    rng = np.random.default_rng(0)

    def synthetic_rate(p: float) -> float:
        sig = [_draw(kp, rng, p)[0] for _ in range(200)]
        qs = [np.unique(w[:query]) for w in sig]
        ts = [np.unique(w) for w in sig]
        return float(np.mean([len(np.intersect1d(qs[i], ts[i + 1])) for i in range(199)]))

    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if synthetic_rate(mid) > real:
            lo = mid
        else:
            hi = mid
    p = (lo + hi) / 2
    return {"probability": p, "real_shared_words": float(real), "synthetic": synthetic_rate(p)}


def _draw(kp, rng, p: float):  # noqa: ANN001, ANN202
    """400 keypoints: words of pool keypoints, a share p of them recombined from the
    half words of two pool keypoints; orientation and scale drawn apart."""
    import numpy as np

    from archive_twins.ingest.features import HALF_WORDS

    n_kp = len(kp["w"])
    pick = rng.integers(0, n_kp, size=400)
    other = rng.integers(0, n_kp, size=400)
    mix = rng.random(400) < p
    words, mwords = kp["w"][pick].astype(np.int64), kp["mw"][pick].astype(np.int64)
    h = HALF_WORDS
    words = np.where(mix, words // h * h + kp["w"][other].astype(np.int64) % h, words)
    mwords = np.where(mix, mwords // h * h + kp["mw"][other].astype(np.int64) % h, mwords)
    return words, mwords


# ---------------------------------------------------------------- one archive


def _drawn_keypoints(pool: Path, meta: dict) -> dict:
    """The pool keypoints the synthetic rasters draw from: those of the photographs
    that are not planted. A planted photograph's words are then held by its copies
    alone, as in an archive, not by hundreds of synthetic rasters too (which would
    make them common words at 50,000 rasters)."""
    import numpy as np

    kp = np.load(pool / "keypoints.npz")
    planted = {
        d["name"].removeprefix("src-") for d in meta["planted"] if d["name"].startswith("src-")
    }
    off = kp["off"]
    keep = [
        np.arange(off[i], off[i + 1])
        for i, d in enumerate(meta["pool"])
        if d["name"].removeprefix("pool-") not in planted
    ]
    take = np.concatenate(keep)
    return {k: kp[k][take] for k in kp.files if k != "off"}


def _synthetic_records(
    n: int, seed: int, pool: Path, meta: dict, chart_share: float = 0.0
) -> tuple[list, dict]:
    import numpy as np

    from archive_twins.ingest.features import POS_GRID

    rng = np.random.default_rng(seed)
    kp = _drawn_keypoints(pool, meta)
    ch = dict(np.load(pool / "chart.npz")) if chart_share else None
    n_kp = len(kp["w"])
    recs, sigs = [], {}
    pool_items = meta["pool"]
    for _ in range(n):
        p = pool_items[int(rng.integers(len(pool_items)))]
        key = rng.bytes(20).hex()
        sha = rng.bytes(32).hex()
        masks = rng.integers(0, 64, size=(8, 20))
        phash = []
        for o in range(8):
            v = int(p["phash"][o], 16)
            for b in set(masks[o].tolist()):
                v ^= 1 << b
            phash.append(f"{v:016x}")
        # tone hashes: the pool photograph's with 20 bits flipped, as for pHash (a
        # pool described before tone hashes existed: random ones)
        tone = []
        for o in range(8):
            t = p.get("tone_hash")
            v = int(t[o], 16) if t else int(rng.integers(0, 1 << 63))
            for b in set(rng.integers(0, 64, size=20).tolist()):
                v ^= 1 << b
            tone.append(f"{v:016x}")
        # words of real keypoints; orientation and scale drawn apart (two images that
        # drew the same pool keypoint would otherwise share it exactly, geometry
        # included, which unrelated photographs do not)
        plain, mirrored = _draw(kp, rng, meta["recombine"]["probability"])
        ang = rng.integers(0, 256, size=400).astype(np.uint8)
        pick = rng.integers(0, n_kp, size=400)
        lsc = kp["s"][pick]
        pos, mpos = kp["p"][pick].copy(), kp["mp"][pick].copy()
        if ch is not None and rng.random() < chart_share:
            # the target in a lower corner, +-7 %: its keypoints replace as many drawn
            # ones, at random ranks (the strongest of every cell are taken first)
            at = rng.choice(400, size=len(ch["w"]), replace=False)
            plain, mirrored = plain.copy(), mirrored.copy()
            plain[at], mirrored[at] = ch["w"], ch["mw"]
            ang[at] = ch["a"]
            scale = rng.uniform(0.93, 1.07)
            lsc = lsc.copy()
            lsc[at] = np.clip(np.rint(ch["s"] + 4 * np.log2(scale)), -127, 127).astype(np.int8)
            bw, bh = ch["box"] * scale
            left = rng.random() < 0.5
            bx = rng.uniform(0.02, 0.06) if left else 1 - bw - rng.uniform(0.02, 0.06)
            by = 1 - bh - rng.uniform(0.02, 0.06)
            gx = np.clip(((bx + ch["rx"] * bw) * POS_GRID).astype(int), 0, POS_GRID - 1)
            gy = np.clip(((by + ch["ry"] * bh) * POS_GRID).astype(int), 0, POS_GRID - 1)
            pos[at] = (gy * POS_GRID + gx).astype(np.uint8)
            mpos[at] = (gy * POS_GRID + POS_GRID - 1 - gx).astype(np.uint8)
        sig = {}
        for prefix, words in (("", plain), ("m", mirrored)):
            uniq, first = np.unique(words, return_index=True)
            sig[prefix + "words"] = uniq.astype(np.uint32)
            a = ang if not prefix else ((128 - ang.astype(np.int64)) % 256).astype(np.uint8)
            sig[prefix + "ang"] = a[first]
            sig[prefix + "lsc"] = lsc[first]
            sig[prefix + "pos"] = (mpos if prefix else pos)[first]
            sig[prefix + "rank"] = first.astype(np.uint16)
        # textured like the real photographs they stand for: every word strong
        sig["nstrong"] = np.array(len(sig["words"]), np.int32)
        sig.update(plain=np.int8(0), specks=np.full(32, 0xFFFFFFFF, np.uint32))
        sigs[sha] = sig
        recs.append(_record(key, sha, p["width"], p["height"], phash, tone, p["sha"]))
    return recs, sigs


def _record(
    key: str, sha: str, w: int, h: int, phash: list, tone: list | None, target: str | None = None
) -> dict:
    return {
        "path": key,
        "status": "ok",
        "pixel_hash": key,
        "sha256": sha,
        "size_bytes": 100_000,
        "width": w,
        "height": h,
        "bits_per_sample": 8,
        "format": "jpeg",
        "phash": phash,
        "tone_hash": tone,
        "blank": False,
        "_target": target,
    }


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src, dst)


def write_archive(
    work: Path, pool: Path, n: int, seed: int, n_shards: int, tag: str, chart: float = 0.0
) -> dict:
    """Records, signature bundles, thumbnails and features of an archive of n rasters
    (planted ones included) in `work`; `tag` names an increment (added shard files)."""
    import numpy as np

    from archive_twins.ingest.features import (
        SIG_KEYS,
        FeatureParams,
        load_raster,
        raster_path,
        save_signatures,
    )
    from archive_twins.records import thumb_path
    from archive_twins.util import write_jsonl

    meta = json.loads((pool / "meta.json").read_text())
    fp = FeatureParams().fingerprint()
    store, feat_store = work / "thumbs", work / "features"
    planted = meta["planted"] if tag == "base" else []
    recs, sigs = _synthetic_records(n - len(planted), seed, pool, meta, chart)
    for d in planted:
        recs.append(
            _record(d["key"], d["sha"], d["width"], d["height"], d["phash"], d.get("tone_hash"))
        )
        full = load_raster(pool / "features", d["sha"], fp)
        sigs[d["sha"]] = {k: full[k] for k in SIG_KEYS}
    for r in recs:
        src_sha = r.pop("_target") or r["sha256"]
        sha = r["sha256"]
        _link(thumb_path(pool / "thumbs", src_sha), thumb_path(store, sha))
        _link(raster_path(pool / "features", src_sha), raster_path(feat_store, sha))
    rng = np.random.default_rng(seed + 1)
    shard_of = rng.integers(0, n_shards, size=len(recs))
    (work / "shards").mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        part = [recs[i] for i in np.flatnonzero(shard_of == s)]
        write_jsonl(work / "shards" / f"{tag}-{s:04d}.jsonl", part)
        save_signatures(
            work / "shards" / f"{tag}-{s:04d}.npz",
            {r["sha256"]: sigs[r["sha256"]] for r in part},
            fp,
        )
    return {"pairs": meta["pairs"], "n": len(recs)}


# ---------------------------------------------------------------- jobs


def job_index(work: Path) -> dict:
    from archive_twins.index.build import build_index
    from archive_twins.index.params import RetrievalParams

    recs = sorted(str(p) for p in (work / "shards").glob("*.jsonl"))
    sigs = sorted(str(p) for p in (work / "shards").glob("*.npz"))
    t0 = time.perf_counter()
    stats = build_index(recs, sigs, work / "index", RetrievalParams(), work / "gens")
    return {**stats, "wall_s": round(time.perf_counter() - t0, 2), **_rusage()}


def job_chunk(work: Path, chunk: int, n_chunks: int) -> dict:
    from archive_twins.ingest.features import FeatureParams
    from archive_twins.verify.match import MatchParams, run_match_chunk

    out = work / "pairs" / f"chunk-{chunk:04d}.jsonl"
    t0 = time.perf_counter()
    stats = run_match_chunk(
        work / "index",
        chunk,
        n_chunks,
        out,
        work / "thumbs",
        work / "features",
        MatchParams(),
        FeatureParams().fingerprint(),
    )
    return {**stats, "wall_s": round(time.perf_counter() - t0, 2), **_rusage()}


def run_job(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--job", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def found_pairs(work: Path) -> tuple[set[frozenset], set[frozenset]]:
    from archive_twins.util import read_jsonl

    out, examined = set(), set()
    for p in (work / "pairs").glob("*.jsonl"):
        for r in read_jsonl(p):
            if "pair" in r:
                examined.add(frozenset(r["pair"]))
            if r.get("copy"):
                out.add(frozenset(r["pair"]))
    return out, examined


def _same_features(shards: Path) -> bool:
    """Whether an earlier run's bundles were made with today's feature settings."""
    import numpy as np

    from archive_twins.ingest.features import FeatureParams

    first = sorted(shards.glob("base-*.npz"))[0]
    with np.load(first) as z:
        return str(z["params"]) == FeatureParams().fingerprint()


def one_size(
    n: int, base: Path, pool: Path, sample: int | None, reuse: bool = False, chart: float = 0.0
) -> dict:
    work = base / (f"n{n}" if not chart else f"n{n}-chart{chart:g}")
    meta_pool = json.loads((pool / "meta.json").read_text())
    n_shards = max(16, n // 1000)
    n_chunks = max(4, n // 4000)
    t0 = time.perf_counter()
    shards, parked = work / "shards", work / "add-shards"
    if reuse and len(list(shards.glob("base-*.npz"))) == n_shards and _same_features(shards):
        # the archive of an earlier run (same seeds): park its added shards, start
        # from no index, no generations and no chunk outputs
        parked.mkdir(exist_ok=True)
        for p in shards.glob("add-*"):
            p.rename(parked / p.name)
        for d in ("index", "gens", "pairs"):
            shutil.rmtree(work / d, ignore_errors=True)
        arch = {"pairs": meta_pool["pairs"], "n": n}
    else:
        shutil.rmtree(work, ignore_errors=True)
        arch = write_archive(work, pool, n, seed=n, n_shards=n_shards, tag="base", chart=chart)
    setup_s = time.perf_counter() - t0
    chunks = list(range(n_chunks))
    if sample and sample < n_chunks:
        chunks = sorted({round(i * (n_chunks - 1) / (sample - 1)) for i in range(sample)})
    idx = run_job("index", str(work))
    ch = [run_job("chunk", str(work), str(c), str(n_chunks)) for c in chunks]
    scale = n_chunks / len(chunks)
    chunk_cpu = sum(c["cpu_s"] for c in ch) * scale
    retr_cpu = sum(c["retrieval_s"] for c in ch) * scale
    cands = sum(c["candidates"] + c["geo_candidates"] for c in ch) * scale
    hash_cands = sum(c["candidates"] for c in ch) * scale
    found, examined = found_pairs(work)
    pairs = arch["pairs"]
    if len(chunks) == n_chunks:
        recall_pairs = pairs
    else:  # only pairs owned by the sampled chunks were searched
        from archive_twins.index.items import chunk_of

        mine = set(chunks)
        recall_pairs = [p for p in pairs if chunk_of(min(p[0], p[1]), n_chunks) in mine]
    hit = [p for p in recall_pairs if frozenset(p[:2]) in found]
    by_kind: dict[str, list[int]] = {}
    for p in recall_pairs:
        by_kind.setdefault(p[2], [0, 0])[1] += 1
        by_kind[p[2]][0] += frozenset(p[:2]) in found
    # rerun after adding 1 % new images (in new shard files: they land in all shards)
    add = max(1, n // 100)
    if len(list(parked.glob("add-*.npz"))) == n_shards:
        for p in parked.glob("add-*"):
            p.rename(shards / p.name)
    else:
        write_archive(work, pool, add, seed=n + 7, n_shards=n_shards, tag="add", chart=chart)
    idx2 = run_job("index", str(work))
    ch2 = [run_job("chunk", str(work), str(c), str(n_chunks)) for c in chunks]
    rerun_cpu = idx2["cpu_s"] + sum(c["cpu_s"] for c in ch2) * scale
    full_cpu = idx["cpu_s"] + chunk_cpu
    return {
        "rasters": n,
        "chart_share": chart,
        "common_words": idx.get("common"),
        "synthetic_words": meta_pool["recombine"],
        "shards": n_shards,
        "chunks": n_chunks,
        "chunks_run": len(chunks),
        "setup_s": round(setup_s, 1),
        "index_cpu_s": idx["cpu_s"],
        "index_peak_rss_mb": idx["peak_rss_mb"],
        "postings": idx["a_words"],
        "chunks_cpu_s": round(chunk_cpu, 1),
        "retrieval_cpu_s": round(retr_cpu, 1),
        "chunk_peak_rss_mb": max(c["peak_rss_mb"] for c in ch),
        "candidates_per_image": round(cands / n, 3),
        "hash_candidates_per_image": round(hash_cands / n, 3),
        "planted_candidate_recall": round(
            len([p for p in recall_pairs if frozenset(p[:2]) in examined])
            / max(1, len(recall_pairs)),
            4,
        ),
        "matching_cpu_s": round(full_cpu, 1),
        "planted_pairs": len(recall_pairs),
        "planted_recall": round(len(hit) / max(1, len(recall_pairs)), 4),
        "missed": sorted({p[2] for p in recall_pairs if frozenset(p[:2]) not in found}),
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
        "rerun_added": add,
        "rerun_cpu_s": round(rerun_cpu, 1),
        "rerun_fraction": round(rerun_cpu / full_cpu, 4),
        "rerun_chunk_peak_rss_mb": max(c["peak_rss_mb"] for c in ch2),
        "rerun_index_cpu_s": idx2["cpu_s"],
        "rerun_index_peak_rss_mb": idx2["peak_rss_mb"],
        "rerun_index_stages": idx2.get("stages"),
        "rerun_chunks_cpu_s": round(sum(c["cpu_s"] for c in ch2) * scale, 1),
        "rerun_chunk_cpu_s_max": max(c["cpu_s"] for c in ch2),
        "rerun_stored_delta": all(c.get("stored_delta") for c in ch2),
        "index_stages": idx.get("stages"),
        "rerun_recall": _recall(work, recall_pairs),
    }


def _recall(work: Path, pairs: list) -> float:
    """Planted pairs found, after the rerun."""
    found, _ = found_pairs(work)
    return round(len([p for p in pairs if frozenset(p[:2]) in found]) / max(1, len(pairs)), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 262_000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--sample-chunks", type=int, default=8, help="chunks run above 50k rasters")
    ap.add_argument(
        "--reuse", action="store_true", help="reuse the archives of an earlier run in --workdir"
    )
    ap.add_argument("--chart", type=float, default=0.0, help="share of rasters with the chart")
    ap.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        kind, work, *rest = args.job
        if kind == "index":
            print(json.dumps(job_index(Path(work))))
        else:
            print(json.dumps(job_chunk(Path(work), int(rest[0]), int(rest[1]))))
        return
    base = args.workdir or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_pool(base / "pool")
    print(f"pool ready in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for n in args.sizes:
        sample = args.sample_chunks if n > 50_000 else None
        row = one_size(n, base, base / "pool", sample, args.reuse, args.chart)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if len(rows) >= 2:
        import math

        a, b = rows[0], rows[-1]
        k = math.log(b["matching_cpu_s"] / a["matching_cpu_s"]) / math.log(
            b["rasters"] / a["rasters"]
        )
        print(f"matching CPU exponent {a['rasters']} -> {b['rasters']}: {k:.2f}")
    if args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
