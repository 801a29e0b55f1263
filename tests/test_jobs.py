"""The job dispatcher (archive_twins/jobs.py): every rule's script reaches its entry
function with the keywords that function takes, read from the right places."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from archive_twins import cli
from archive_twins.jobs import JOBS, keywords

REPO = Path(__file__).resolve().parents[1]


def test_every_rule_script_has_a_job_and_calls_the_dispatcher():
    scripts = {}
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text(encoding="utf-8")
        for rule, script in re.findall(r"^rule (\w+):.*?script:\s*\"([^\"]+)\"", text, re.M | re.S):
            scripts[rule] = (smk.parent / script).resolve()
    assert set(scripts) == set(JOBS)
    for path in scripts.values():
        code = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith(("import sys", "sys.path", '"""'))
        ]
        assert code[-2:] == ["from archive_twins.jobs import run  # noqa: E402", "run(snakemake)"]


def test_each_job_passes_exactly_what_its_entry_function_takes():
    for rule, (entry, sources) in JOBS.items():
        sig = inspect.signature(getattr(cli, entry))
        required = {n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty}
        assert required <= set(sources) <= set(sig.parameters), rule


def _job(rule: str, **sections: dict) -> SimpleNamespace:
    ns = {k: SimpleNamespace(**v) for k, v in sections.items() if k not in ("log", "config")}
    return SimpleNamespace(
        rule=rule,
        log=sections.get("log", ["job.log"]),
        config=sections.get("config", {}),
        threads=3,
        **ns,
    )


def test_keywords_are_read_and_converted():
    common = dict(input={"stamp": "s", "records": ("r1", "r2"), "skipped": "k", "pairs": ()})
    aggregate = {
        "input": {**common["input"], "decisions": []},
        "output": {"sqlite": "q", "json": "j", "csv": "c", "registry": "g"},
        "params": {"master_paths": ("m",), "archive": "a", "shards": 4},
    }
    entry, kw = keywords(_job("aggregate", **aggregate))
    assert entry == "run_aggregate"
    assert kw["decisions"] is None and kw["records"] == ["r1", "r2"] and kw["pairs"] == []
    assert kw["master_paths"] == ["m"] and kw["log"] == "job.log" and kw["json_dir"] == "j"
    aggregate["input"]["decisions"] = ["d.csv"]
    assert keywords(_job("aggregate", **aggregate))[1]["decisions"] == "d.csv"

    match = {
        "input": {"index": "i", "stamp": "s"},
        "output": {"pairs": "p"},
        "wildcards": {"chunk": "0003"},
        "params": dict.fromkeys(
            ("n_chunks", "thumbs", "features", "matching", "decode", "feature_settings"), 1
        ),
    }
    assert keywords(_job("match_chunk", **match))[1]["chunk"] == 3

    decode = {
        "input": {"manifest": "m", "stamp": "s"},
        "output": {"records": "r", "features": "f"},
        "params": dict.fromkeys(JOBS["decode_shard"][1], 0),
        "config": {"file_check": "full"},
    }
    kw = keywords(_job("decode_shard", **decode))[1]
    assert kw["full"] is True and kw["threads"] == 3
    decode["config"] = {"verify": "full"}  # the old name, still read
    assert keywords(_job("decode_shard", **decode))[1]["full"] is True
    decode["config"] = {}
    assert keywords(_job("decode_shard", **decode))[1]["full"] is False


def test_the_dispatcher_imports_no_heavy_library():
    """A job's start-up: the dispatcher and cli load none of the image or table
    libraries (each entry function imports what its rule uses)."""
    code = (
        "import sys, archive_twins.jobs, archive_twins.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cv2', 'pyvips', 'duckdb', 'numpy', 'scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
