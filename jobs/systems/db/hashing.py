"""Row digests computed inside the source database (issue 20's push-down).

A full-strategy run that has a previous run to compare with asks the source for each row's key
and a 64-bit digest of the whole row (`digest_sql`); only those cross the wire. Rows whose
digest differs from the stage store's are then read in full by key (`rows_by_key_sql`).

Each dialect hashes a text rendering of the row that differs whenever a value (or its NULL-ness)
does:
- PostgreSQL: `hashtextextended(row::text, 0)` — the row's composite text (quoted, NULL as an
  empty field), hashed by the server's own 64-bit hash. Sessions run in UTC (url.py), so
  timestamps render the same in every run.
- MySQL/MariaDB: the first 60 bits of `MD5` over `length:value` fields (NULL as `-`), so no
  value can pass for two fields or for NULL.
SQLite is not offered: it has no hash function, and the only type-exact row-to-text function,
`quote()`, costs more than reading the row into Python (measured: the digest query took 3x the
CPU of reading every column, 1.07 s against 0.35 s for 200,000 rows x 10 columns); its rows
are hashed by the gateway (jobs.sync.stage).

The scheme name (`scheme`) travels with the stage store's hashes: the server's major version is
part of it, since PostgreSQL may change `hashtextextended` between majors; a store kept under
another name is re-sent once in full rather than compared.
"""

from __future__ import annotations

from sqlalchemy import Engine

PARAM = "\x00?\x00"  # the reader's parameter mark (jobs.systems.db.reader.read_batches)


def supported(engine: Engine) -> bool:
    return engine.dialect.name in ("postgresql", "mysql")


def scheme(engine: Engine) -> str:
    """The name of the digests `digest_sql` computes on this server."""
    dialect = engine.dialect.name
    version = engine.dialect.server_version_info or ()
    if dialect == "postgresql":
        return f"pg{version[0] if version else ''}:hashtextextended(row::text)"
    return "mysql:md5(len:value)/60"


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _body(sql: str) -> str:
    return sql.strip().rstrip(";")


def digest_sql(engine: Engine, sql: str, keys: list[str], columns: list[str]) -> str:
    """Key columns and `dz_hash` of every row of `sql`, in key order (the stage store compares
    in-order runs segment by segment, and PostgreSQL's heap order drifts as rows change)."""
    q = [f"dz_src.{_quote(engine, k)}" for k in keys]
    return (
        f"SELECT {', '.join(q)}, {_digest(engine, columns)} AS dz_hash FROM ({_body(sql)}) dz_src "
        f"ORDER BY {', '.join(q)}"
    )


def _digest(engine: Engine, columns: list[str]) -> str:
    dialect = engine.dialect.name
    names = [f"dz_src.{_quote(engine, name)}" for name in columns]
    if dialect == "postgresql":
        return "hashtextextended(dz_src::text, 0)"
    if dialect != "mysql":
        raise ValueError(f"Rows are not hashed in {dialect} sources.")
    fields = ", ".join(f"IFNULL(CONCAT(LENGTH({c}), ':', {c}), '-')" for c in names)
    return f"CAST(CONV(LEFT(MD5(CONCAT_WS(',', {fields})), 15), 16, 10) AS SIGNED)"


def hashed_rows_sql(engine: Engine, sql: str, columns: list[str]) -> str:
    """Every row of `sql` and, last, its `dz_hash` (a first load keeps the digests)."""
    return f"SELECT dz_src.*, {_digest(engine, columns)} AS dz_hash FROM ({_body(sql)}) dz_src"


def copy_rows_sql(engine: Engine, sql: str, columns: list[str]) -> str:
    """`dz_hash` first, then every row of `sql`: a text COPY line starts with the digest, which
    the reader splits off in C (jobs.systems.db.reader `read_copy_batches`)."""
    return f"SELECT {_digest(engine, columns)} AS dz_hash, dz_src.* FROM ({_body(sql)}) dz_src"


def rows_by_key_sql(engine: Engine, sql: str, keys: list[str], count: int) -> str:
    """`sql`'s rows whose key is one of `count` keys (parameters: the keys' values in order)."""
    q = [f"dz_src.{_quote(engine, k)}" for k in keys]
    if len(keys) == 1:
        where = f"{q[0]} IN ({', '.join([PARAM] * count)})"
    else:
        one = "(" + ", ".join([PARAM] * len(keys)) + ")"
        where = f"({', '.join(q)}) IN ({', '.join([one] * count)})"
    return f"SELECT * FROM ({_body(sql)}) dz_src WHERE {where}"


def columns_sql(sql: str) -> str:
    """No rows, only the result's column names."""
    return f"SELECT * FROM ({_body(sql)}) dz_src WHERE 1 = 0"
