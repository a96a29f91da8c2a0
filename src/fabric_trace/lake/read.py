"""Reading a lake with DuckDB: the store's tables and views, and the derived tables, over Parquet.

:func:`connect_lake` returns an in-memory DuckDB connection on which the lake
looks like an analysed store: ``span_store``, ``resources`` and ``scopes`` are
views over the lake's Parquet (``file_id`` and ``content_hash`` are NULL), the
store's views (``spans``, ``span_events``...) are created over them, and every
registered analyzer's tables and views, and ``findings``, are views over
``DIR/derived/<name>/``, cast to the DuckDB types of the store (Parquet written
by Spark carries ``VARCHAR`` for ``JSON``). Reports and ``fabric query`` run on
it unchanged.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from fabric_trace.analyzers import registry
from fabric_trace.analyzers.contract import FINDINGS_DDL
from fabric_trace.analyzers.engine import FINDINGS_VIEW, config_fingerprint
from fabric_trace.errors import LakeError
from fabric_trace.lake.layout import (
    DERIVED_STATE, STORE_ONLY, TABLES, Lake, data_files, open_lake, read_state, store_types,
)


def _store_sql(name: str) -> str:
    return resources.files("fabric_trace.store").joinpath(name).read_text(encoding="utf-8")


def derived_catalog() -> dict[str, tuple[tuple[str, str], ...]]:
    """(column, DuckDB type) of every derived table and view, by name: each registered analyzer's
    tables and views, and ``findings`` (computed from their DDL in an empty in-memory store)."""
    return _catalog(tuple((a.name, a.version, a.tables, a.views) for a in registry().values()))


@cache
def _catalog(key: tuple[Any, ...]) -> dict[str, tuple[tuple[str, str], ...]]:
    con = duckdb.connect()
    try:
        con.execute(_store_sql("schema.sql"))
        con.execute(FINDINGS_DDL)
        analyzers = list(registry().values())
        for a in analyzers:
            if a.sql("tables.sql"):
                con.execute(a.sql("tables.sql"))
        con.execute(FINDINGS_VIEW)
        for a in analyzers:
            if a.sql("views.sql"):
                con.execute(a.sql("views.sql"))
        names = [t for a in analyzers for t in (*a.tables, *a.views)] + ["findings"]
        return {n: tuple((r[0], r[1]) for r in con.execute(f"DESCRIBE {n}").fetchall()) for n in names}
    finally:
        con.close()


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _select(files: list[Path], columns: tuple[tuple[str, str], ...], nulls: tuple[str, ...] = ()) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" if c in nulls else f"CAST({c} AS {t}) AS {c}" for c, t in columns)
    return f"SELECT {cols} FROM read_parquet([{', '.join(_lit(f) for f in files)}], hive_partitioning = false)"


def attach_spans(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Create the store's tables as views over the lake (and the store's views over them)."""
    con.execute(_store_sql("schema.sql"))
    for table, store_table in TABLES.items():
        con.execute(f"DROP TABLE {store_table}")
        columns = store_types(store_table)
        if lake.files[table]:
            con.execute(f"CREATE VIEW {store_table} AS {_select(lake.files[table], columns, STORE_ONLY)}")
        else:
            con.execute(f"CREATE TABLE {store_table} ({', '.join(f'{c} {t}' for c, t in columns)})")
    con.execute(_store_sql("views.sql"))


def check_derived(lake: Lake, config: Any) -> dict[str, Any]:
    """The derived state, or :class:`LakeError` when the derived tables are missing or stale."""
    state = read_state(lake.derived, DERIVED_STATE)
    hint = f"run: fabric analyze --engine spark --lake {lake.root}"
    if not state:
        raise LakeError(f"lake {lake.root} has no derived tables ({lake.derived / DERIVED_STATE} is missing)",
                        hint=hint)
    if state.get("lake") != lake.fingerprint():
        raise LakeError(f"the derived tables of {lake.root} are stale: the lake's data changed since they were "
                        "computed", hint=hint)
    if state.get("config") != config_fingerprint(config):
        raise LakeError(f"the derived tables of {lake.root} are stale: the analyzers or their configuration "
                        "changed since they were computed", hint=hint)
    return state


def attach_derived(con: duckdb.DuckDBPyConnection, derived: Path) -> None:
    """Create every derived table and view (and ``finding_store``) as a view over ``derived/<name>/``."""
    catalog = derived_catalog()
    for name, columns in catalog.items():
        files = data_files(derived / name)
        if not (derived / name).is_dir():
            raise LakeError(f"derived table {name!r} is missing: no directory {derived / name}",
                            hint=f"run: fabric analyze --engine spark --lake {derived.parent}")
        for f in files:
            _check_columns(con, f, name, columns)
        if files:
            body = _select(files, columns)
        else:
            body = "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns) + " WHERE false"
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
    con.execute("CREATE OR REPLACE VIEW finding_store AS SELECT * FROM findings")


def _check_columns(con: duckdb.DuckDBPyConnection, path: Path, name: str,
                   columns: tuple[tuple[str, str], ...]) -> None:
    have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()]
    want = [c for c, _ in columns]
    missing = [c for c in want if c not in have]
    if missing:
        raise LakeError(f"{path}: column {missing[0]!r} of derived table {name!r} is missing")
    extra = [c for c in have if c not in want]
    if extra:
        raise LakeError(f"{path}: unexpected column {extra[0]!r} in derived table {name!r}")


def connect_lake(root: str | Path, config: Any, *, derived: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection on which the lake at ``root`` reads like an analysed store.

    With ``derived`` the derived tables must exist and be fresh (:class:`LakeError` otherwise).
    """
    lake = open_lake(root, check_traces=False)
    if derived:
        check_derived(lake, config)
    con = duckdb.connect()
    try:
        attach_spans(con, lake)
        if derived:
            attach_derived(con, lake.derived)
    except duckdb.Error as exc:
        con.close()
        raise LakeError(f"reading the lake at {lake.root} failed: {exc}") from None
    except BaseException:
        con.close()
        raise
    return con


def harden(con: duckdb.DuckDBPyConnection, root: str | Path) -> None:
    """Forbid file and network access outside the lake for the rest of this connection."""
    allowed = str(Path(root).resolve()).replace("'", "''").rstrip("/") + "/"
    con.execute(f"SET allowed_directories = ['{allowed}']")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
