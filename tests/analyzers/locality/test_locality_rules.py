"""The ``[locality]`` config section and the SQL building blocks of the rules."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from fabric_trace.analyzers.locality import config as R
from fabric_trace.analyzers.locality.config import LocalityConfig, parse_section
from fabric_trace.config import load_config
from fabric_trace.errors import ConfigError


def test_defaults() -> None:
    cfg = parse_section({})
    assert cfg == LocalityConfig()
    assert cfg.min_prompt_tokens == 1024 and cfg.infer_cache_outcome and cfg.service_calls
    assert "cache.hit" in cfg.hit_attributes and "redis" in cfg.cache_systems


def test_full_section(tmp_path: Path) -> None:
    p = tmp_path / "fabric.toml"
    p.write_text("""
[locality]
hit_attributes = ["x.cache_state"]
cache_systems = ["Redis", "hazelcast"]
infer_cache_outcome = false
access_roles = ["retrieval", "memory"]
service_calls = false
min_prompt_tokens = 2048
prompt_fingerprint_attributes = ["app.prompt.id"]

[locality.peer_locations]
"*.rds.eu-west-1.amazonaws.com" = "eu-west-1"
"Redis.Local" = { region = "us-east-1", zone = "us-east-1a" }
""")
    cfg = LocalityConfig.from_config(load_config(str(p)))
    assert cfg.hit_attributes == ("x.cache_state",) and cfg.cache_systems == ("redis", "hazelcast")
    assert not cfg.infer_cache_outcome and not cfg.service_calls
    assert cfg.access_roles == ("retrieval", "memory") and cfg.min_prompt_tokens == 2048
    # exact names first, lower-cased (peers are stored lower-case), then globs in config order
    assert [(p.pattern, p.region, p.zone, p.is_glob) for p in cfg.peer_locations] == [
        ("redis.local", "us-east-1", "us-east-1a", False),
        ("*.rds.eu-west-1.amazonaws.com", "eu-west-1", None, True),
    ]


@pytest.mark.parametrize(("section", "message"), [
    ({"nope": 1}, "unknown key"),
    ({"min_prompt_tokens": -1}, "min_prompt_tokens"),
    ({"min_prompt_tokens": True}, "min_prompt_tokens"),
    ({"infer_cache_outcome": "yes"}, "infer_cache_outcome"),
    ({"hit_attributes": "cache.hit"}, "hit_attributes"),
    ({"hit_attributes": [""]}, "hit_attributes"),
    ({"access_roles": ["cache"]}, "access_roles"),
    ({"access_roles": ["warehouse"]}, "access_roles"),
    ({"peer_locations": {"a": "x/y/z"}}, "region/zone"),
    ({"peer_locations": {"a": {"city": "x"}}}, "region and/or zone"),
    ({"peer_locations": {"a": 3}}, "string or a table"),
    ({"peer_locations": ["a"]}, "peer_locations"),
])
def test_bad_values_are_config_errors(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_section(section)


def _eval(expr: str, **cols: object) -> object:
    con = duckdb.connect()
    names = ", ".join(f"? AS {k}" for k in cols)
    return con.execute(f"SELECT {expr} FROM (SELECT {names})", list(cols.values())).fetchall()[0][0]


@pytest.mark.parametrize(("raw", "outcome"), [
    ("true", "hit"), ("false", "miss"), ("HIT", "hit"), ("Miss", "miss"), ('["HIT from cloudfront"]', "hit"),
    ("EXPIRED", "miss"), ("1", "hit"), ("0", "miss"), ("BYPASS", None), ("DYNAMIC", None), (None, None),
])
def test_outcome_values(raw: str | None, outcome: str | None) -> None:
    assert _eval(R.outcome_value_sql("v"), v=raw) == outcome


@pytest.mark.parametrize(("query", "key"), [
    ("SELECT * FROM docs WHERE id = 7", "SELECT * FROM docs WHERE id = 7"),
    ("SELECT * FROM docs WHERE id = $1", None),
    ("SELECT * FROM docs WHERE id = ?", None),
    ("SELECT * FROM docs WHERE id = %s", None),
    ("SELECT * FROM docs WHERE id = :id", None),
    ("INSERT INTO docs VALUES (1)", None),
])
def test_database_keys_are_literal_reads(query: str, key: str | None) -> None:
    x = "[NULL, NULL, NULL, NULL, q, NULL, NULL, NULL]"
    assert _eval(R.database_key_sql(x), q=query) == key


@pytest.mark.parametrize(("query", "name", "op", "key"), [
    ("GET mem:1", "GET", "GET", "mem:1"),
    ("SET mem:1 ? EX 60", "SET", "SET", "mem:1"),
    (None, "get", "GET", None),
    ("HGETALL user:9", "HGETALL", "HGETALL", "user:9"),
])
def test_cache_command_and_key(query: str | None, name: str, op: str, key: str | None) -> None:
    x = "[NULL, NULL, NULL, NULL, q, NULL, NULL, NULL]"
    assert _eval(R.cache_op_sql(x, "n"), q=query, n=name) == op
    assert _eval(R.cache_key_sql(x), q=query) == key


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "config.md").read_text()
    section = doc[doc.index("## `[locality]`"):]
    for key in R._KNOWN_KEYS:
        assert f"| `{key}` |" in section, key


def test_empty_lists_are_allowed(tmp_path: Path) -> None:
    from test_locality_cases import _case_c_spans, HOME
    from test_locality_helpers import build_db, findings

    cfg = "[locality]\nhit_attributes = []\ncache_systems = []\nprompt_fingerprint_attributes = []\naccess_roles = []\n"
    db = build_db(tmp_path, _case_c_spans(), {"app": HOME}, config=cfg)
    # without fingerprints the calls with other system instructions match the first call too
    assert [f["span_id"][-2:] for f in findings(db, "prefix_cache_miss")] == ["02", "07", "08"]
