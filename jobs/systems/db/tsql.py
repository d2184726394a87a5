"""T-SQL (the vendor's dialect: `TOP 1`, `[brackets]`, `ISNULL`) run on another database.

The exports' SQL (DataRunSQL, DynamicParameter) is written for SQL Server. sqlglot translates
it to the connection's dialect where it can; where it cannot, the error names the construct.
Identifiers are quoted as written (not on SQLite, which folds no case), so `r_keyFieldName`
finds the column the gateway's writer created with that exact name (PostgreSQL would fold an
unquoted name to lower case).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

# SQLAlchemy dialect names → sqlglot's.
_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql"}
# SQL Server functions that have no translation: named in the error rather than failing later
# with the database's "function does not exist".
_SQL_SERVER_ONLY = {"OPENJSON", "OPENXML", "OPENROWSET", "OPENQUERY", "OPENDATASOURCE"}
PIPELINE_DATA = re.compile(r"@pipelinedata\s*\(\s*\)", re.IGNORECASE)


class TranslationError(ValueError):
    """T-SQL that cannot be run on the connection's database; the message names why."""


def translate(sql: str, dialect: str, *, where: str = "SQL") -> str:
    """`sql` (T-SQL) for `dialect` (a SQLAlchemy dialect name); SQL Server gets it as is."""
    if dialect == "mssql":
        return sql
    target = _DIALECTS.get(dialect)
    if target is None:
        raise TranslationError(f"{where}: no T-SQL translation to {dialect} databases.")
    try:
        statements = sqlglot.parse(sql, read="tsql", error_level=ErrorLevel.RAISE)
        for statement in statements:
            for node in statement.walk() if statement else ():
                name = (
                    str(node.name).upper()
                    if isinstance(node, exp.Anonymous)
                    else type(node).__name__.upper()
                )
                if isinstance(node, exp.Func) and name in _SQL_SERVER_ONLY:
                    raise UnsupportedError(f"{name}() is SQL Server only")
        parts = [
            statement.sql(
                dialect=target,
                # SQLite folds no case, and would read a quoted unknown column as a string.
                identify=target != "sqlite",
                unsupported_level=ErrorLevel.RAISE,
                pretty=False,
            )
            for statement in statements
            if statement is not None
        ]
    except ParseError as exc:
        detail = "; ".join(
            f"{e.get('description')} near {e.get('highlight')!r} (line {e.get('line')})"
            for e in exc.errors[:3]
        )
        raise TranslationError(f"{where}: cannot read the T-SQL: {detail or exc}.") from None
    except UnsupportedError as exc:
        raise TranslationError(
            f"{where}: the T-SQL uses something {dialect} has no equivalent for: {exc}"
        ) from None
    if not parts:
        raise TranslationError(f"{where}: the SQL is empty.")
    return ";\n".join(parts)
