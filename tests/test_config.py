"""config.yaml mirrors the parameter records: the defaults agree, and the schema
documents every key."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

from archive_twins.settings import match_params
from archive_twins.verify.match import MatchParams

REPO = Path(__file__).resolve().parents[1]


def test_config_defaults_equal_the_code_defaults():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert match_params(config["matching"]) == MatchParams()


def _walk(schema: dict, path: str = ""):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}{key}", sub
        yield from _walk(sub, f"{path}{key}.")


def test_every_matching_key_has_a_description_and_default():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    for name, sub in _walk(schema["properties"]["matching"], "matching."):
        assert sub.get("description"), name
        if sub.get("type") != "object":
            assert "default" in sub, name


def _leaves(config: dict, path: str = ""):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{path}{key}.")
        else:
            yield f"{path}{key}", value


def test_every_key_is_described_and_config_yaml_holds_the_schema_defaults():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    values = dict(_leaves(config))
    for name, sub in _walk(schema):
        if name.startswith("resources."):
            continue  # per rule, open-ended
        assert sub.get("description"), name
        if "default" in sub and name in values:
            assert values[name] == sub["default"], name


def _flat(obj, path: str = "") -> dict:
    if not dataclasses.is_dataclass(obj):
        return {path[:-1]: obj}
    out = {}
    for f in dataclasses.fields(obj):
        out.update(_flat(getattr(obj, f.name), f"{path}{f.name}."))
    return out


def test_every_parameter_is_set_from_config_yaml_or_named_internal():
    """Changing each key of `matching:` changes the parameter records somewhere;
    every field that no key reaches is in settings.INTERNAL, with its reason."""
    from archive_twins.settings import INTERNAL

    matching = yaml.safe_load((REPO / "config.yaml").read_text())["matching"]
    base = _flat(match_params(matching))
    reached = set()
    for name, value in _leaves(matching):
        changed = copy.deepcopy(matching)
        *parents, key = name.split(".")
        node = changed
        for p in parents:
            node = node[p]
        if isinstance(value, bool):
            node[key] = not value
            if key == "geometric":
                continue  # off: no geometric stage at all (geo is None)
        else:
            node[key] = value * 2 + 1
        after = _flat(match_params(changed))
        moved = {k for k in base if after.get(k) != base[k]}
        assert moved, f"matching.{name} changes no parameter"
        reached |= moved
    assert set(base) - reached == set(INTERNAL)


def test_file_check_reads_its_old_name_too():
    """`verify: full` (the key's old name) still re-hashes every file; the stricter
    setting wins when both are given."""
    from archive_twins.util import file_check

    assert file_check({"file_check": "quick"}) == "quick"
    assert file_check({"file_check": "full"}) == "full"
    assert file_check({"file_check": "quick", "verify": "full"}) == "full"
    assert file_check({"file_check": "full", "verify": "quick"}) == "full"
    assert file_check({}) == "quick"
