"""The one safe expression language: SQLite SQL expressions evaluated over batches of rows.

Used by DataFlux flow nodes and DataZen pipeline components; never Python `eval`. See
docs/flows.md ("Expressions") for the language a user writes.

How it stays safe: each thread owns a private in-memory SQLite connection with nothing in it
but temporary row tables. A user's expression is prepared as `SELECT (expr) FROM batch`, where
`batch` is a CTE over the rows, under an authorizer that allows exactly the CTE's SELECT and
the user's one, reading the rows, and calling whitelisted functions; ATTACH, PRAGMA, writes,
subqueries, recursive CTEs, other tables (sqlite_master included) and every function not on
the list are refused when the statement is prepared. Extension loading is off, string/blob
length is capped and a progress handler stops an evaluation that runs too long.

How it stays fast: a small batch (a real-time call's rows) travels as ONE JSON parameter read
by `json_each`, so an evaluation is one cached statement with no INSERT and no transaction, and
`CompiledSteps` computes several fields in that one statement. That is fewer SQLite calls, and
each call releases the GIL: under load every release is a thread switch (a Determine_Gender
run makes 13 instead of 58). Unpacking JSON costs about 0.5 µs a row more than inserting, so a
large batch, or one holding a value JSON would not bring back as itself (a blob, a NUL
character, an integer past 64 bits, NaN), goes through a temporary table instead, inserted and
rolled back around the same SELECT.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CompiledCondition",
    "CompiledExpression",
    "CompiledSteps",
    "ExpressionError",
    "compile_condition",
    "compile_expression",
    "find_name",
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
# Batches up to this many rows travel as JSON; larger ones through a row table (see above).
JSON_MAX_ROWS = 256
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
        # SELECTs of a one-step statement's own shape (the source's and the step's).
        self.base_selects = 0
        self.allowed_selects = 1_000_000  # counting, at start-up
        self.denied: str | None = None
        self.deadline = 0.0
        self.tables: dict[tuple[str, ...], str] = {}
        self.generation = -1
        self.conn.set_authorizer(self._authorize)
        self.conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        self.sync_functions()
        # Load the (empty) schema while trusted, then count the SELECTs of the statement shape
        # every evaluation has: the user's expression may not add any.
        self.conn.execute(_json_source(()) + "SELECT NULL FROM batch", ("[]",)).fetchall()
        self.trusted = False
        self.selects = 0
        try:
            self.conn.execute(_json_source(()) + "SELECT (NULL) FROM batch", ("[]",)).fetchall()
        finally:
            self.trusted = True
        self.base_selects = self.selects

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
            if self.selects <= self.allowed_selects:
                return sqlite3.SQLITE_OK
            return self._deny("subqueries are not allowed")
        if action == sqlite3.SQLITE_READ:
            # The rows: json_each (which reads only its argument) or a row table. SQLite names
            # no database when a query reads a table but none of its columns.
            if arg1 == "json_each" and db in ("main", None):
                return sqlite3.SQLITE_OK
            if db in ("temp", None) and arg1 in self.tables.values():
                return sqlite3.SQLITE_OK
            return self._deny(f"reading {arg1!r} is not allowed")
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            if name in ALLOWED_FUNCTIONS or name in _custom_functions or name in _JSON_READS:
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

    def run(
        self,
        columns: tuple[str, ...],
        body: str,
        rows: Sequence[Sequence[Any]],
        timeout: float,
        steps: int = 1,
    ) -> list[tuple]:
        """The statement `body` (reading `batch`, with `steps` SELECTs of its own) over `rows`,
        one tuple per result row."""
        self.sync_functions()
        document = _as_json(rows, len(columns)) if len(rows) <= JSON_MAX_ROWS else None
        if document is None:
            return self._run_through_table(columns, body, rows, timeout, steps)
        return self._untrusted(_json_source(columns) + body, (document,), timeout, steps)

    def _run_through_table(
        self,
        columns: tuple[str, ...],
        body: str,
        rows: Sequence[Sequence[Any]],
        timeout: float,
        steps: int,
    ) -> list[tuple]:
        """Insert `rows` into a row table, run the statement over it, roll the rows back."""
        table = self.table_for(columns)
        names = ", ".join(["rowid", *(quote_identifier(name) for name in columns)])
        placeholders = ", ".join("?" * (len(columns) + 1))
        self.trusted = True
        self.conn.execute("BEGIN")
        try:
            try:
                self.conn.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({placeholders})",
                    _numbered(rows, len(columns)),
                )
            except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
                # e.g. an integer beyond SQLite's 64 bits, a string over the length cap
                raise ExpressionError(f"a row value cannot be used: {exc}") from exc
            source = f"WITH batch({names}) AS (SELECT {names} FROM temp.{table}) "
            return self._untrusted(source + body, (), timeout, steps)
        finally:
            self.trusted = True
            self.conn.execute("ROLLBACK")

    def _untrusted(self, sql: str, params: tuple, timeout: float, steps: int) -> list[tuple]:
        self.trusted = False
        self.selects = 0
        # The source's SELECTs (counted at start-up with one step) and one per further step.
        self.allowed_selects = self.base_selects + steps - 1
        self.denied = None
        self.deadline = time.monotonic() + timeout
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ExpressionError(self._explain(exc)) from exc
        except OverflowError as exc:
            raise ExpressionError(f"a value is out of range: {exc}") from exc
        finally:
            self.trusted = True

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


# What the `batch` CTE may call to unpack the JSON rows (a user's expression may call it too).
_JSON_READS = frozenset(["->>"])
# 19 digits or more: an integer that may be past 64 bits, which JSON would bring back as a real.
# (A float's repr never has that many digits in a row; a false alarm only costs the table path.)
_LONG_NUMBER = re.compile(r"\d{19}")


class _NotJSON(Exception):
    """A value that cannot travel in the JSON document as itself."""


def _json_value(value: Any) -> Any:
    converted = to_sqlite(value)
    if isinstance(converted, bytes):
        raise _NotJSON
    return converted


def _as_json(rows: Sequence[Sequence[Any]], width: int) -> str | None:
    """The rows as one JSON array of arrays, or None when a value would not come back as itself."""
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ExpressionError(f"row {number} has {len(row)} values, expected {width}")
    try:
        document = json.dumps(rows, ensure_ascii=False, allow_nan=False, default=_json_value)
    except (_NotJSON, ValueError):
        return None
    if "\\u0000" in document or _LONG_NUMBER.search(document):
        return None
    return document


def _json_source(columns: Sequence[str]) -> str:
    """The `batch` CTE over the JSON document bound as the statement's only parameter."""
    names = ", ".join(["rowid", *(quote_identifier(name) for name in columns)])
    values = ", ".join(["key + 1", *(f"value ->> {n}" for n in range(len(columns)))])
    return f"WITH batch({names}) AS (SELECT {values} FROM json_each(?1)) "


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
        self._body = (
            f"SELECT rowid FROM batch WHERE ({text}\n) ORDER BY rowid"
            if condition
            else f"SELECT ({text}\n) FROM batch ORDER BY rowid"
        )
        # Prepare it once over two empty rows: this reports syntax errors, unknown columns,
        # refused operations and aggregates (which would fold the rows into one) now.
        probe = self._run([(None,) * len(self.columns)] * 2)
        if not condition and len(probe) != 2:
            raise ExpressionError("aggregate functions are not allowed in an expression")

    def _run(self, rows: Sequence[Sequence[Any]]) -> list[tuple]:
        try:
            return _sandbox().run(self.columns, self._body, rows, self.timeout)
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


class CompiledSteps:
    """Expressions computed one after another over the same rows, in ONE statement.

    Each step is (target, expression): the expression sees the columns so far, and its value
    becomes the column `target`, replacing the column of that name (matched without case) or
    coming after the others. `evaluate` gives, for each row, the final value of every target,
    in the order the targets first appear. One statement for all the steps instead of one each:
    fewer SQLite calls, each a thread switch under load (see the module's docstring).
    """

    def __init__(
        self,
        steps: Sequence[tuple[str, str]],
        columns: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not steps:
            raise ExpressionError("there is no expression to compute")
        self.columns = tuple(columns)
        self.timeout = timeout
        self.targets: list[str] = []
        current = list(self.columns)
        ctes: list[str] = []
        source = "batch"
        for number, (target, expression) in enumerate(steps, 1):
            # Alone first: its own errors (syntax, unknown column, aggregate) name it.
            compile_expression(expression, current, timeout)
            position = find_name(current, target)
            if position < 0:
                current.append(target)
                position = len(current) - 1
            else:
                current[position] = target
            values = [
                f"({expression.strip()}\n)" if index == position else quote_identifier(name)
                for index, name in enumerate(current)
            ]
            names = ", ".join(["rowid", *(quote_identifier(name) for name in current)])
            ctes.append(
                f"step_{number}({names}) AS (SELECT {', '.join(['rowid', *values])} FROM {source})"
            )
            source = f"step_{number}"
            if find_name(self.targets, target) < 0:
                self.targets.append(target)
        finals = ", ".join(quote_identifier(current[find_name(current, t)]) for t in self.targets)
        self._body = f", {', '.join(ctes)} SELECT {finals} FROM {source} ORDER BY rowid"
        self._steps = len(steps) + 1
        self._run([(None,) * len(self.columns)] * 2)

    def evaluate(self, rows: Sequence[Sequence[Any]]) -> list[tuple]:
        if not rows:
            return []
        return self._run(rows)

    def _run(self, rows: Sequence[Sequence[Any]]) -> list[tuple]:
        try:
            return _sandbox().run(self.columns, self._body, rows, self.timeout, self._steps)
        except ExpressionError as exc:
            raise ExpressionError(
                f"{exc} (in the expressions for {', '.join(self.targets)})"
            ) from None


def find_name(names: Sequence[str], name: str) -> int:
    """Position of `name` in `names`, matched without case as SQL names are; -1 if absent."""
    lowered = name.lower()
    return next((i for i, each in enumerate(names) if each.lower() == lowered), -1)


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
