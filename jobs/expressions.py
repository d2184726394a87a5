"""The one safe expression language: SQLite SQL expressions evaluated over batches of rows.

Used by DataFlux flow nodes and DataZen pipeline components; never Python `eval`. See
docs/flows.md ("Expressions") for the language a user writes.

How it stays safe: each thread owns a private in-memory SQLite connection with nothing in it
but temporary row tables. A user's expression is prepared as `SELECT (expr) FROM <row table>`
under an authorizer that allows exactly one SELECT, reading that row table, and calling
whitelisted functions; ATTACH, PRAGMA, writes, subqueries, recursive CTEs, other tables
(sqlite_master included) and every function not on the list are refused when the statement
is prepared. Extension loading is off, string/blob length is capped and a progress handler
stops an evaluation that runs too long.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CompiledCondition",
    "CompiledExpression",
    "ExpressionError",
    "compile_condition",
    "compile_expression",
    "register_function",
]


class ExpressionError(ValueError):
    """An expression that does not compile, is not allowed, or failed on the data."""


# SQLite's built-in scalar functions that cannot reach outside the row: no I/O, no huge
# allocations (randomblob, zeroblob), no introspection (sqlite_*), no aggregates or windows.
ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    [
        "abs",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "format",
        "glob",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nullif",
        "octet_length",
        "printf",
        "quote",
        "random",
        "replace",
        "round",
        "rtrim",
        "sign",
        "soundex",
        "substr",
        "substring",
        "trim",
        "typeof",
        "unhex",
        "unicode",
        "unlikely",
        "upper",
        "date",
        "time",
        "datetime",
        "julianday",
        "strftime",
        "unixepoch",
        "timediff",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "ceil",
        "ceiling",
        "cos",
        "cosh",
        "degrees",
        "exp",
        "floor",
        "ln",
        "log",
        "log10",
        "log2",
        "mod",
        "pi",
        "pow",
        "power",
        "radians",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "trunc",
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_insert",
        "json_object",
        "json_patch",
        "json_quote",
        "json_remove",
        "json_replace",
        "json_set",
        "json_type",
        "json_valid",
    ]
)

# Largest string or blob an expression may build, and how long one evaluation may run.
MAX_VALUE_BYTES = 1_000_000
MAX_SQL_BYTES = 100_000
DEFAULT_TIMEOUT_SECONDS = 10.0
_PROGRESS_STEPS = 1_000

_custom_functions: dict[str, tuple[int, Callable[..., Any], bool]] = {}
_custom_lock = threading.Lock()
_custom_generation = 0


def register_function(
    name: str, nargs: int, fn: Callable[..., Any], *, deterministic: bool = True
) -> None:
    """Make a Python scalar function callable from expressions (nargs -1 = any number).

    The function receives SQLite values (int, float, str, bytes, None) and must return one.
    """
    global _custom_generation
    if not name.isidentifier():
        raise ValueError(f"Function name {name!r} is not a plain identifier.")
    with _custom_lock:
        _custom_functions[name.lower()] = (nargs, fn, deterministic)
        _custom_generation += 1


class _Sandbox:
    """One thread's SQLite connection, its row tables and the authorizer's current mode."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=True)
        if hasattr(self.conn, "enable_load_extension"):
            self.conn.enable_load_extension(False)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
        self.conn.execute("PRAGMA trusted_schema = OFF")
        self.trusted = True
        self.selects = 0
        self.denied: str | None = None
        self.deadline = 0.0
        self.tables: dict[tuple[str, ...], str] = {}
        self.generation = -1
        self.conn.set_authorizer(self._authorize)
        self.conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        self.sync_functions()

    def sync_functions(self) -> None:
        if self.generation == _custom_generation:
            return
        with _custom_lock:
            for name, (nargs, fn, deterministic) in _custom_functions.items():
                self.conn.create_function(name, nargs, fn, deterministic=deterministic)
            self.generation = _custom_generation

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
    ) -> int:
        if self.trusted:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_SELECT:
            self.selects += 1
            if self.selects == 1:
                return sqlite3.SQLITE_OK
            return self._deny("subqueries are not allowed")
        if action == sqlite3.SQLITE_READ:
            # SQLite names no database when a query reads the row table but none of its columns.
            if db in ("temp", None) and arg1 in self.tables.values():
                return sqlite3.SQLITE_OK
            return self._deny(f"reading {arg1!r} is not allowed")
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            if name in ALLOWED_FUNCTIONS or name in _custom_functions:
                return sqlite3.SQLITE_OK
            return self._deny(f"function {arg2}() is not allowed")
        return self._deny(_ACTION_NAMES.get(action, f"operation {action}") + " is not allowed")

    def _deny(self, reason: str) -> int:
        self.denied = self.denied or reason
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        # A non-zero answer makes SQLite abort the statement with "interrupted".
        return 1 if not self.trusted and time.monotonic() > self.deadline else 0

    def table_for(self, columns: tuple[str, ...]) -> str:
        table = self.tables.get(columns)
        if table is None:
            table = f"rows_{len(self.tables) + 1}"
            defs = ", ".join(quote_identifier(name) for name in columns) or "_ignored"
            self.trusted = True
            self.conn.execute(f"CREATE TEMP TABLE {table} ({defs})")
            self.tables[columns] = table
        return table

    def columns_of(self, table: str) -> tuple[str, ...]:
        return next(columns for columns, name in self.tables.items() if name == table)

    def run(
        self,
        table: str,
        width: int,
        sql: str,
        rows: Sequence[Sequence[Any]],
        timeout: float,
    ) -> list[tuple]:
        """Insert `rows`, run the user's statement `sql` over them, roll the rows back."""
        self.sync_functions()
        names = ", ".join(["rowid", *(quote_identifier(name) for name in self.columns_of(table))])
        placeholders = ", ".join("?" * (width + 1))
        self.trusted = True
        self.conn.execute("BEGIN")
        try:
            if rows:
                try:
                    self.conn.executemany(
                        f"INSERT INTO {table} ({names}) VALUES ({placeholders})",
                        _numbered(rows, width),
                    )
                except (sqlite3.Error, OverflowError) as exc:
                    # e.g. an integer beyond SQLite's 64 bits, a string over the length cap
                    raise ExpressionError(f"a row value cannot be used: {exc}") from exc
            self.trusted = False
            self.selects = 0
            self.denied = None
            self.deadline = time.monotonic() + timeout
            try:
                return self.conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise ExpressionError(self._explain(exc)) from exc
            except OverflowError as exc:
                raise ExpressionError(f"a value is out of range: {exc}") from exc
        finally:
            self.trusted = True
            self.conn.execute("ROLLBACK")

    def _explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        if self.denied:
            return f"not allowed: {self.denied}"
        if text == "interrupted":
            return "the expression took too long and was stopped"
        if text.startswith("near ") or "syntax error" in text or "incomplete input" in text:
            return f"syntax error: {text}"
        return text


# Names for the authorizer's action codes, so a refusal says what was refused.
_ACTION_NAMES = {
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_PRAGMA: "PRAGMA",
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
    sqlite3.SQLITE_RECURSIVE: "a recursive query",
    sqlite3.SQLITE_TRANSACTION: "a transaction",
}

_local = threading.local()


def _sandbox() -> _Sandbox:
    box = getattr(_local, "sandbox", None)
    if box is None:
        box = _local.sandbox = _Sandbox()
    return box


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PLAIN = (int, float, str, bytes, type(None))


def to_sqlite(value: Any) -> Any:
    """A row value as SQLite sees it: numbers stay numbers, dates become ISO text."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value)


def _numbered(rows: Sequence[Sequence[Any]], width: int) -> Any:
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ExpressionError(f"row {number} has {len(row)} values, expected {width}")
        if all(type(value) in _PLAIN for value in row):
            yield (number, *row)
        else:
            yield (number, *(to_sqlite(value) for value in row))


class _Compiled:
    def __init__(
        self, expression: str, columns: Sequence[str], timeout: float, *, condition: bool
    ) -> None:
        text = (expression or "").strip()
        if not text:
            raise ExpressionError("the expression is empty")
        if "\x00" in text:
            raise ExpressionError("the expression contains a NUL character")
        self.expression = text
        self.columns = tuple(columns)
        lowered = [name.lower() for name in self.columns]
        duplicates = sorted({name for name in self.columns if lowered.count(name.lower()) > 1})
        if duplicates:
            raise ExpressionError(f"duplicate column names: {', '.join(duplicates)}")
        self.timeout = timeout
        self.condition = condition
        # The newline ends a trailing `--` comment, so it cannot swallow the closing parenthesis.
        self._template = (
            "SELECT rowid FROM {table} WHERE ({expr}\n) ORDER BY rowid"
            if condition
            else "SELECT ({expr}\n) FROM {table} ORDER BY rowid"
        )
        # Prepare it once over two empty rows: this reports syntax errors, unknown columns,
        # refused operations and aggregates (which would fold the rows into one) now.
        probe = self._run([(None,) * len(self.columns)] * 2)
        if not condition and len(probe) != 2:
            raise ExpressionError("aggregate functions are not allowed in an expression")

    def _run(self, rows: Sequence[Sequence[Any]]) -> list[tuple]:
        box = _sandbox()
        table = box.table_for(self.columns)
        sql = self._template.format(table=table, expr=self.expression)
        try:
            return box.run(table, len(self.columns), sql, rows, self.timeout)
        except ExpressionError as exc:
            raise ExpressionError(f"{exc} (in expression: {self.expression})") from None


class CompiledExpression(_Compiled):
    """An expression checked against a column list; `evaluate` gives one value per row."""

    def __init__(
        self, expression: str, columns: Sequence[str], timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(expression, columns, timeout, condition=False)

    def evaluate(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        if not rows:
            return []
        return [value for (value,) in self._run(rows)]


class CompiledCondition(_Compiled):
    """A condition checked against a column list; `filter` keeps the rows where it is true."""

    def __init__(
        self, expression: str, columns: Sequence[str], timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(expression, columns, timeout, condition=True)

    def matches(self, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """For each row, whether the condition is true (NULL counts as false, as in SQL)."""
        keep = [False] * len(rows)
        if rows:
            for (rowid,) in self._run(rows):
                keep[rowid - 1] = True
        return keep

    def filter(self, rows: Sequence[tuple]) -> list[tuple]:
        if not rows:
            return []
        return [rows[rowid - 1] for (rowid,) in self._run(rows)]


def compile_expression(
    expr: str, columns: Sequence[str], timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> CompiledExpression:
    """Check `expr` against `columns`; raises ExpressionError naming the problem."""
    return CompiledExpression(expr, columns, timeout)


def compile_condition(
    expr: str, columns: Sequence[str], timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> CompiledCondition:
    """Check the condition `expr` against `columns`; raises ExpressionError naming the problem."""
    return CompiledCondition(expr, columns, timeout)
