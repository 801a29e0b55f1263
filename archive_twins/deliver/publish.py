"""Publishing: one atomic switch between complete sets of deliverables.

Takes the staged `archive.sqlite`, `json/` and `html/`; gives `{results}/generations/
g-N/` holding one complete set (hard links of the staged files, and
`generation.json`: what it was built from), `{results}/current`, a symlink naming
the published generation, and `{results}/archive.sqlite`, `json` and `html`, fixed
symlinks through `current`.

Publishing is one `rename` of a new symlink over `current`: every path a reader
resolves goes through `current` at the moment it is opened, so it sees one
generation or the other, never a mixture, and a crash at any point leaves one
complete set published. The generation published before stays until the next
publish (a reader still going through it keeps working); older ones are removed.
Results of an older version (real files where the symlinks go) are first adopted
as a generation and swapped for the symlinks with `renameat2(RENAME_EXCHANGE)`, so
those too are never missing or mixed. Each generation holds `thumbs`, a symlink to
`{results}/thumbs`, so the pages' `../thumbs/` links work from its real path too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ..util import dir_mode, remove_path

GENERATIONS = "generations"
CURRENT = "current"
RECORD = "generation.json"


def _link_or_copy(src: str, dst: str) -> str:
    """Hard link (no extra space, instant), or a copy across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _number(name: str) -> int | None:
    if name.startswith("g-") and name[2:].isdigit():
        return int(name[2:])
    return None


def current(results: str | os.PathLike) -> Path | None:
    """The published generation's directory, if any."""
    link = Path(results) / CURRENT
    try:
        target = os.readlink(link)
    except OSError:
        return None
    path = Path(results) / target
    return path if path.is_dir() else None


def current_record(results: str | os.PathLike) -> dict | None:
    """What the published generation was built from (`generation.json`)."""
    gen = current(results)
    if gen is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        return json.loads((gen / RECORD).read_text(encoding="utf-8"))
    return None


def publish(
    staging: str | os.PathLike, results: str | os.PathLike, names: Iterable[str], record: dict
) -> Path:
    """Make the staged deliverables `names` the published generation, atomically.

    The staged files stay (hard-linked), so Snakemake still sees the stages as done.
    Returns the new generation's directory.
    """
    staging, results = Path(staging), Path(results)
    names = list(names)
    _adopt_legacy(results, names)
    before = current(results)
    info = {"published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    gen = _build(results, staging, names, info)
    _switch(results, gen)
    _ensure_links(results, names)
    _prune(results, keep={gen.name, before.name if before else ""})
    return gen


def _build(results: Path, source: Path, names: list[str], info: dict) -> Path:
    """A complete generation `g-N` of the deliverables `names` in `source` (hard
    links), built under a temporary name and renamed into place."""
    gens = results / GENERATIONS
    gens.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".g.", dir=gens))
    try:
        tmp.chmod(dir_mode())
        for name in names:
            src = source / name
            if src.is_dir():
                shutil.copytree(src, tmp / name, copy_function=_link_or_copy, symlinks=True)
            else:
                _link_or_copy(os.fspath(src), os.fspath(tmp / name))
        os.symlink(os.path.join("..", "..", "thumbs"), tmp / "thumbs")
        (tmp / RECORD).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
        gen = gens / f"g-{_next_number(gens)}"
        os.rename(tmp, gen)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return gen


def _next_number(gens: Path) -> int:
    taken = [n for p in gens.iterdir() if (n := _number(p.name)) is not None]
    return max(taken, default=0) + 1


def _switch(results: Path, gen: Path) -> None:
    """Point `current` at a generation: a new symlink renamed over the old one."""
    tmp = results / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(gen, results), tmp)
    os.replace(tmp, results / CURRENT)


def _ensure_links(results: Path, names: Iterable[str]) -> None:
    """`{results}/<name>` -> `current/<name>` for each deliverable (created once;
    a wrong or missing one is replaced by a rename)."""
    for name in names:
        path, want = results / name, os.path.join(CURRENT, name)
        with contextlib.suppress(OSError):
            if os.readlink(path) == want:
                continue
        tmp = results / f".{name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(want, tmp)
        if path.exists() and not path.is_symlink():
            _exchange(tmp, path)  # a real file or directory of an older version
            remove_path(tmp)
        else:
            os.replace(tmp, path)


def _adopt_legacy(results: Path, names: list[str]) -> None:
    """Deliverables of an older version (real files in `{results}`) become a
    generation of their own, published, so that swapping them for the symlinks
    (`_ensure_links`) changes nothing a reader sees."""
    legacy = [n for n in names if (results / n).exists() and not (results / n).is_symlink()]
    if not legacy or current(results) is not None:
        return
    _switch(results, _build(results, results, legacy, {"adopted": legacy}))
    _ensure_links(results, names)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); where the
    filesystem or the C library cannot, two renames (a window of microseconds,
    once in a results directory's life: when an older version's files go)."""
    import ctypes  # here: once in a results directory's life, and every parse imports us
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), os.fspath(b))
    aside = b.with_name(f".{b.name}.{os.getpid()}.aside.tmp")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _prune(results: Path, keep: set[str]) -> None:
    """Remove generations other than `keep` (the published one and the one before)."""
    gens = results / GENERATIONS
    for p in gens.iterdir():
        if _number(p.name) is not None and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
