"""Row digests computed inside the source database (issue 20's push-down).

A full-strategy run that has a previous run to compare with asks the source for each row's key
and a 64-bit digest of the whole row (`digest_sql`); only those cross the wire. Rows whose
digest differs from the stage store's are then read in full by key (`rows_by_key_sql`).

Each dialect hashes the row so that the digest differs whenever a value (or its NULL-ness)
does:
- PostgreSQL 14 and later: `hash_record_extended(ROW(<terms>), 0)`, each column hashed by its
  type's own 64-bit hash function, with no text rendering of the row (`_pg_terms` says which
  term each type needs to stay exact). Before 14: `hashtextextended(row::text, 0)`, the row's
  composite text hashed. Sessions run in UTC (url.py), so timestamps compare the same in
  every run.
- MySQL/MariaDB: the first 60 bits of `MD5` over `length:value` fields (NULL as `-`), so no
  value can pass for two fields or for NULL.
SQLite is not offered: it has no hash function, and the only type-exact row-to-text function,
`quote()`, costs more than reading the row into Python (measured: the digest query took 3x the
CPU of reading every column, 1.07 s against 0.35 s for 200,000 rows x 10 columns); its rows
are hashed by the gateway (jobs.sync.stage).

The scheme name (`scheme`) travels with the stage store's hashes: the server's major version is
part of it, since PostgreSQL may change its hash functions between majors; a store kept under
another name is re-sent once in full rather than compared.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

PARAM = "\x00?\x00"  # the reader's parameter mark (jobs.systems.db.reader.read_batches)

# PostgreSQL types whose own extended hash tells every two distinct values apart (one term:
# the column). int2, int4, float4, float8, bool, date, bytea, uuid. float8's hash makes -0 and
# 0 equal: a change between the two is not seen (docs/engine.md).
_PG_EXACT = {21, 23, 700, 701, 16, 1082, 17, 2950}
# int8 and the types stored as one: their hash folds the 64-bit value into 32 bits (high half
# XOR low half), so a second term pins the value. int8: its high half. time, timestamp,
# timestamptz: the epoch as float8 (microseconds apart stay apart for centuries).
_PG_INT8 = {20: "{} >> 32", 1083: "date_part('epoch', {})", 1114: "date_part('epoch', {})"}
_PG_INT8[1184] = _PG_INT8[1114]
# Text types hash under their collation; "C" compares bytes (a nondeterministic collation
# would make 'A' and 'a' hash alike).
_PG_TEXT = {25, 1043, 1042}
_PG_NUMERIC = 1700
# The first major with hash_record_extended.
_PG_TYPED = 14


def supported(engine: Engine) -> bool:
    return engine.dialect.name in ("postgresql", "mysql")


def scheme(engine: Engine) -> str:
    """The name of the digests `digest_sql` computes on this server."""
    if engine.dialect.name == "postgresql":
        name = "hash_record_extended(typed)" if _typed(engine) else "hashtextextended(row::text)"
        return f"pg{_major(engine) or ''}:{name}"
    return "mysql:md5(len:value)/60"


def _major(engine: Engine) -> int | None:
    if engine.dialect.server_version_info is None:
        with engine.connect():
            pass  # the dialect learns the server's version on its first connection
    version = engine.dialect.server_version_info or ()
    return version[0] if version and isinstance(version[0], int) else None


def _typed(engine: Engine) -> bool:
    return (_major(engine) or 0) >= _PG_TYPED


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _body(sql: str) -> str:
    return sql.strip().rstrip(";")


def digest_sql(engine: Engine, sql: str, keys: list[str], columns: list[str]) -> str:
    """Key columns and `dz_hash` of every row of `sql`, in key order (the stage store compares
    in-order runs segment by segment, and PostgreSQL's heap order drifts as rows change)."""
    q = [f"dz_src.{_quote(engine, k)}" for k in keys]
    return (
        f"SELECT {', '.join(q)}, {_digest(engine, sql, columns)} AS dz_hash "
        f"FROM ({_body(sql)}) dz_src ORDER BY {', '.join(q)}"
    )


def _digest(engine: Engine, sql: str, columns: list[str]) -> str:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        if not _typed(engine):
            return "hashtextextended(dz_src::text, 0)"
        return f"hash_record_extended(ROW({', '.join(_pg_terms(engine, sql))}), 0)"
    if dialect != "mysql":
        raise ValueError(f"Rows are not hashed in {dialect} sources.")
    names = [f"dz_src.{_quote(engine, name)}" for name in columns]
    fields = ", ".join(f"IFNULL(CONCAT(LENGTH({c}), ':', {c}), '-')" for c in names)
    return f"CAST(CONV(LEFT(MD5(CONCAT_WS(',', {fields})), 15), 16, 10) AS SIGNED)"


def _pg_terms(engine: Engine, sql: str) -> list[str]:
    """What the row digest hashes for each column of `sql`, by the column's type (its OID and
    numeric scale, as the server describes the result)."""
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection
        assert raw is not None
        try:
            with raw.cursor() as cursor:
                cursor.execute(columns_sql(sql))
                description = cursor.description or []
        finally:
            connection.rollback()
    terms: list[str] = []
    for column in description:
        c = f"dz_src.{_quote(engine, column.name)}"
        oid = column.type_code
        if oid in _PG_EXACT:
            terms.append(c)
        elif oid in _PG_INT8:
            terms += [c, _PG_INT8[oid].format(c)]
        elif oid in _PG_TEXT:
            terms.append(f'{c} COLLATE "C"')
        elif oid == _PG_NUMERIC:
            # hash_numeric hashes the value: 1.0 and 1.00 alike, where the text (and a target's
            # unconstrained numeric) keeps the scale; a column of fixed scale needs no second term.
            terms += [c] if column.scale is not None else [c, f"scale({c})"]
        else:
            # json, xml, interval ('1 day' = '24 hours'), arrays, enums, geometry…: the text.
            terms.append(f'{c}::text COLLATE "C"')
    return terms


def hashed_rows_sql(engine: Engine, sql: str, columns: list[str]) -> str:
    """Every row of `sql` and, last, its `dz_hash` (a first load keeps the digests)."""
    digest = _digest(engine, sql, columns)
    return f"SELECT dz_src.*, {digest} AS dz_hash FROM ({_body(sql)}) dz_src"


def copy_rows_sql(engine: Engine, sql: str, columns: list[str]) -> str:
    """`dz_hash` first, then every row of `sql`: a text COPY line starts with the digest, which
    the reader splits off in C (jobs.systems.db.reader `read_copy_batches`)."""
    digest = _digest(engine, sql, columns)
    return f"SELECT {digest} AS dz_hash, dz_src.* FROM ({_body(sql)}) dz_src"


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
