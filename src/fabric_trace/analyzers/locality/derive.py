"""The state-locality analyzer's derive step: where the state a step needs lives, and what misses cost.

``derive`` runs after the latency analyzer (it reads ``latency_spans`` for the
critical path and ``latency_traces`` for end-to-end durations) and writes:

* ``locality_access_store`` -> view ``locality_accesses``: one row per state
  access (cache lookup, LLM prefix cache, retrieval / vector store / memory /
  database call, cross-service call) with its outcome, where the caller and
  the serving side run, and how much critical-path time it holds
  (:mod:`.queries`);
* ``locality_trace_store``: per trace, the critical-path time inside misses
  and remote accesses and the what-if end-to-end duration
  (:mod:`.whatif`);
* findings ``cache_miss``, ``prefix_cache_miss``, ``cross_zone``,
  ``cross_region``, ``redundant_fetch`` and ``session_redundant_fetch``
  (:mod:`.findings`).

Every rule is in docs/locality.md; the config keys in docs/config.md.
"""

from __future__ import annotations

from typing import Any

import duckdb

from fabric_trace.analyzers.contract import Derived, Partition, sql_kernel
from fabric_trace.analyzers.locality import config as R
from fabric_trace.analyzers.locality import queries as Q
from fabric_trace.analyzers.locality.config import LocalityConfig

_TEMP_TABLES = ("_loc_peer", "_loc_tsess", "_loc_cand", "_loc_srv", "_loc_writes", "_loc_backing",
                "_loc_crit", "_loc_trace_crit", "_loc_tix")


def derive(part: Partition, config: Any) -> Derived:
    """The locality rows and findings of one partition of whole sessions (a kernel: no store).

    Reads the partition's ``latency_spans`` and ``latency_traces`` and the store-wide
    ``locality_median_store`` (the what-if targets)."""
    from fabric_trace.analyzers.locality import ANALYZER

    return sql_kernel(ANALYZER, part, config, derive_sql)


def derive_sql(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Fill the locality tables and findings from the tables on ``con`` (see :func:`derive`)."""
    from fabric_trace.analyzers.locality import findings as locality_findings
    from fabric_trace.analyzers.locality import whatif as locality_whatif

    cfg = LocalityConfig.from_config(config)
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_peer (pos INTEGER, pattern VARCHAR, is_glob BOOLEAN, "
                "region VARCHAR, zone VARCHAR)")
    rows = R.peer_rows(cfg)
    if rows:
        con.executemany("INSERT INTO _loc_peer VALUES (?, ?, ?, ?, ?)", rows)
    spans = locality_whatif.build_index(con)  # -> _loc_tix, _loc_idx
    con.execute(Q.TSESS_SQL)
    con.execute(Q.candidates_sql(cfg))
    con.execute(Q.SERVERS_SQL)
    con.execute(Q.WRITES_SQL)
    con.execute(Q.BACKING_SQL)
    locality_whatif.critical_inputs(con, spans)  # -> _loc_crit
    con.execute(Q.accesses_sql(cfg))
    locality_whatif.trace_critical(con, spans)
    locality_whatif.what_if(con, spans)
    locality_findings.insert_findings(con, cfg)
    con.unregister("_loc_idx")
    for tmp in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {tmp}")


def rederive(part: Partition, config: Any) -> Derived:
    """Only the what-if columns of ``locality_trace_store`` again, for traces whose what-if targets
    (the store-wide medians) moved (``locality.MEDIANS.rederive``; a kernel: no store).

    Reads the partition's id columns of the spans, its ``latency_spans``, ``latency_traces``,
    ``locality_access_store`` and ``locality_trace_store`` rows and the medians; the accesses,
    findings and critical times do not depend on the medians and are not derived again."""
    from fabric_trace.analyzers.locality import ANALYZER
    from fabric_trace.analyzers.locality import whatif as locality_whatif

    return sql_kernel(ANALYZER, part, config, locality_whatif.what_if_again, tables=("locality_trace_store",))
