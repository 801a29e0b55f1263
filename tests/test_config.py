"""config.yaml mirrors the parameter records: the defaults agree, and the schema
documents every key."""

from __future__ import annotations

from pathlib import Path

import yaml

from archive_twins.match import MatchParams
from archive_twins.settings import match_params

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
