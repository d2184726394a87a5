"""T-SQL (the vendor's dialect: `TOP 1`, `[brackets]`, `ISNULL`, `CROSS APPLY OPENJSON`) run on
another database.

The exports' SQL (DataRunSQL, DynamicParameter, the `SqlRead` of a reader whose `SystemName`
is SQL Server) is written for SQL Server. sqlglot parses it; this module then does what sqlglot
cannot know without the database, and sqlglot writes the result in the connection's dialect.
Where something has no translation, the error names the construct.

- **Names**, matched case-insensitively as SQL Server's default collation does, against the
  tables the SQL names (looked up in the connection's catalogue, `Catalogue`) and the names
  the SQL itself defines (aliases, OPENJSON columns). Identifiers are then quoted as found
  (not on SQLite, which folds no case), so `r_keyFieldName` finds the column the gateway's
  writer created with that exact name and `[Form].[x]` finds schema `form`.
- **`+` on text** is concatenation when an operand is text (a literal, a cast to a character
  type, a text column of the catalogue…), and a comparison between a number column and a
  text column converts the text to a number, as SQL Server's implicit conversions do
  (PostgreSQL has neither).
- **OPENJSON**, with its default schema (`key`, `value`, `type`) or a `WITH (…)` schema, becomes
  `json_each`/`json_array_elements` (PostgreSQL), `JSON_TABLE` (MariaDB) or `json_each` (SQLite).
- **Markup**: a column built by concatenating text that contains markup (`'<id>' + x +
  '</id>'`) is markup written by the job's own SQL; the data spliced into it (`x`) is
  XML-escaped where it is spliced, and the column is reported in `Translation.markup` so that
  an HTTP body template inserts it unescaped (docs/decisions.md, "Template escaping").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlalchemy import Connection, inspect
from sqlalchemy.sql import sqltypes
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

# SQLAlchemy dialect names → sqlglot's.
_DIALECTS = {
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
}
# SQL Server functions that have no translation: named in the error rather than failing later
# with the database's "function does not exist".
_SQL_SERVER_ONLY = {"OPENXML", "OPENROWSET", "OPENQUERY", "OPENDATASOURCE"}
PIPELINE_DATA = re.compile(r"@pipelinedata\s*\(\s*\)", re.IGNORECASE)

NUMBER, TEXT = "number", "text"
_TEXT_TYPES = {
    exp.DataType.Type.CHAR,
    exp.DataType.Type.NCHAR,
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.NVARCHAR,
    exp.DataType.Type.TEXT,
}
_TEXT_FUNCTIONS = (
    exp.Upper, exp.Lower, exp.Trim, exp.Substring, exp.Left, exp.Right, exp.GroupConcat,
    exp.Concat, exp.DPipe, exp.Initcap,
)  # fmt: skip
_XML_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;"))


class TranslationError(ValueError):
    """T-SQL that cannot be run on the connection's database; the message names why."""


@dataclass
class Table:
    """A table as the catalogue knows it: its real names and its columns' kinds."""

    schema: str | None
    name: str
    columns: dict[str, str]  # real name → NUMBER, TEXT or ""


@dataclass
class Catalogue:
    """Tables the SQL may name, looked up case-insensitively (`find(schema, name)`), plus
    tables the caller knows already (the `@pipelinedata()` batch)."""

    find: Callable[[str | None, str], Table | None] = lambda schema, name: None
    known: dict[str, Table] = field(default_factory=dict)

    def table(self, schema: str | None, name: str) -> Table | None:
        if schema is None and name.lower() in self.known:
            return self.known[name.lower()]
        return self.find(schema, name)


@dataclass(frozen=True)
class Translation:
    sql: str
    # Result columns (lowercased) that hold markup written by the SQL, data in it escaped.
    markup: frozenset[str] = frozenset()


def translate(
    sql: str, dialect: str, *, where: str = "SQL", catalogue: Catalogue | None = None
) -> str:
    """`sql` (T-SQL) for `dialect` (a SQLAlchemy dialect name)."""
    return translate_query(sql, dialect, where=where, catalogue=catalogue).sql


def translate_query(
    sql: str, dialect: str, *, where: str = "SQL", catalogue: Catalogue | None = None
) -> Translation:
    target = _DIALECTS.get(dialect)
    if target is None:
        raise TranslationError(f"{where}: no T-SQL translation to {dialect} databases.")
    try:
        statements = [s for s in sqlglot.parse(sql, read="tsql", error_level=ErrorLevel.RAISE) if s]
        if not statements:
            raise TranslationError(f"{where}: the SQL is empty.")
        markup: frozenset[str] = frozenset()
        for statement in statements:
            _refuse(statement)
            if target != "tsql":
                _Names(statement, catalogue or Catalogue(), target).resolve()
            _concatenation(statement, catalogue or Catalogue())
            markup = _Markup(target).run(statement)
            if target != "tsql":
                _Kinds(statement, catalogue or Catalogue()).convert_comparisons(target)
                _openjson(statement, target)
        if target == "tsql" and not markup:
            # SQL Server runs it as written, unless markup was found: its data is escaped.
            return Translation(sql)
        parts = [
            statement.sql(
                dialect=target,
                # SQLite folds no case, and would read a quoted unknown column as a string.
                identify=target not in ("sqlite", "tsql"),
                unsupported_level=ErrorLevel.RAISE,
                pretty=False,
            )
            for statement in statements
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
    return Translation(";\n".join(parts), markup)


def _refuse(statement: exp.Expr) -> None:
    for node in statement.walk():
        name = (
            str(node.name).upper()
            if isinstance(node, exp.Anonymous)
            else type(node).__name__.upper()
        )
        if isinstance(node, exp.Func) and name in _SQL_SERVER_ONLY:
            raise UnsupportedError(f"{name}() is SQL Server only")
        if isinstance(node, exp.ForClause):
            raise UnsupportedError(f"FOR {node.text('kind').upper()} is SQL Server only")
        if isinstance(node, exp.Parameter):
            raise UnsupportedError(f"T-SQL variables (@{node.name}) are SQL Server only")
        if isinstance(node, exp.OpenJSON) and not isinstance(node.parent, exp.Lateral | exp.Table):
            raise UnsupportedError("OPENJSON() outside FROM/CROSS APPLY/OUTER APPLY")


# -- names -----------------------------------------------------------------------------------------
_OPENJSON_DEFAULT = {"key": TEXT, "value": TEXT, "type": NUMBER}


def _openjson_columns(node: exp.OpenJSON) -> dict[str, str]:
    defs = node.expressions
    if not defs:
        return dict(_OPENJSON_DEFAULT)
    return {d.name: _kind_of_type(d.args.get("kind")) for d in defs}


def _kind_of_type(kind: exp.DataType | None) -> str:
    if kind is None:
        return ""
    if kind.this in _TEXT_TYPES:
        return TEXT
    if kind.is_type(*exp.DataType.NUMERIC_TYPES):
        return NUMBER
    return ""


def _sources(select: exp.Select) -> list[exp.Expr]:
    found = []
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is not None:
        found.append(from_.this)
    for join in select.args.get("joins") or []:
        found.append(join.this)
    return found


class _Names:
    """Identifiers matched case-insensitively, as SQL Server matches them, then written as
    the catalogue (or the SQL's own definition) spells them."""

    def __init__(self, statement: exp.Expr, catalogue: Catalogue, target: str) -> None:
        self.statement = statement
        self.catalogue = catalogue
        self.target = target
        self.names: dict[str, set[str]] = {}
        self.by_alias: dict[str, dict[str, str]] = {}  # alias lower → {column lower: real}

    def _define(self, name: str) -> None:
        self.names.setdefault(name.lower(), set()).add(name)

    def resolve(self) -> None:
        ctes = {c.alias_or_name.lower() for c in self.statement.find_all(exp.CTE)}
        for table in list(self.statement.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier) or table.name.lower() in ctes:
                continue
            found = self.catalogue.table(table.text("db") or None, table.name)
            if self.target == "sqlite" and table.text("db").lower() not in ("", "main", "temp"):
                # The gateway's writers put `schema.table` in `table` on SQLite (no schemas).
                table.set("db", None)
            if found is None:
                continue
            table.set("this", exp.to_identifier(found.name))
            if table.args.get("db") is not None and found.schema is not None:
                table.set("db", exp.to_identifier(found.schema))
            for column in found.columns:
                self._define(column)
            self.by_alias[table.alias_or_name.lower()] = {c.lower(): c for c in found.columns}
        for node in self.statement.walk():
            if isinstance(node, exp.Alias):
                self._define(node.alias)
            elif isinstance(node, exp.TableAlias):
                self._define(node.name)
                for column in node.columns:
                    self._define(column.name)
            elif isinstance(node, exp.OpenJSON):
                for column in _openjson_columns(node):
                    self._define(column)
                parent = node.parent
                if isinstance(parent, exp.Lateral | exp.Table) and parent.alias:
                    cols = _openjson_columns(node)
                    self.by_alias[parent.alias.lower()] = {c.lower(): c for c in cols}
        for ref in list(self.statement.find_all(exp.Column)):
            qualifier = ref.table
            if qualifier:
                real = self._pick(qualifier, ref, {})
                if real != qualifier:
                    ref.set("table", exp.to_identifier(real))
            columns = self.by_alias.get(qualifier.lower(), {}) if qualifier else {}
            ident = ref.this
            if isinstance(ident, exp.Identifier):
                real = self._pick(ident.name, ref, columns)
                if real != ident.name:
                    ref.set("this", exp.to_identifier(real, quoted=ident.quoted))

    def _pick(self, name: str, where: exp.Expr, preferred: dict[str, str]) -> str:
        if name.lower() in preferred:
            return preferred[name.lower()]
        spellings = self.names.get(name.lower(), set())
        if not spellings or name in spellings:
            return name
        if len(spellings) == 1:
            return next(iter(spellings))
        raise UnsupportedError(
            f"the name {name} matches {', '.join(sorted(spellings))} in different cases; "
            f"SQL Server would not tell them apart (in {where.sql('tsql')})"
        )


# -- kinds (number or text) ------------------------------------------------------------------------
class _Kinds:
    """What each column of each FROM source holds, as far as the catalogue and the SQL say."""

    def __init__(self, statement: exp.Expr, catalogue: Catalogue) -> None:
        self.statement = statement
        self.catalogue = catalogue
        self._cache: dict[int, dict[str, dict[str, str]]] = {}

    def scope(self, select: exp.Select) -> dict[str, dict[str, str]]:
        key = id(select)
        if key in self._cache:
            return self._cache[key]
        scope: dict[str, dict[str, str]] = {}
        for source in _sources(select):
            alias = source.alias_or_name.lower() if hasattr(source, "alias_or_name") else ""
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                found = self.catalogue.table(source.text("db") or None, source.name)
                scope[alias] = {c.lower(): k for c, k in found.columns.items()} if found else {}
            elif isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
                scope[alias] = self.outputs(source.this)
            elif isinstance(source, exp.Lateral | exp.Table) and isinstance(
                source.this, exp.OpenJSON
            ):
                cols = _openjson_columns(source.this)
                scope[alias] = {c.lower(): k for c, k in cols.items()}
        self._cache[key] = scope
        return scope

    def outputs(self, select: exp.Select) -> dict[str, str]:
        return {p.alias_or_name.lower(): self.kind(p.unalias(), select) for p in select.expressions}

    def kind(self, node: exp.Expr, select: exp.Select | None = None) -> str:
        if isinstance(node, exp.Paren):
            return self.kind(node.this, select)
        if isinstance(node, exp.Literal):
            return TEXT if node.is_string else NUMBER
        if isinstance(node, exp.Cast | exp.TryCast):
            return _kind_of_type(node.to)
        if isinstance(node, exp.Coalesce | exp.Max | exp.Min):
            return self.kind(node.this, select)
        if isinstance(node, _TEXT_FUNCTIONS):
            return TEXT
        if isinstance(node, exp.Count):
            return NUMBER
        if isinstance(node, exp.Column):
            select = select or node.find_ancestor(exp.Select)
            if select is None:
                return ""
            scope = self.scope(select)
            name = node.name.lower()
            if node.table:
                return scope.get(node.table.lower(), {}).get(name, "")
            kinds = {cols[name] for cols in scope.values() if name in cols}
            return kinds.pop() if len(kinds) == 1 else ""
        return ""

    def convert_comparisons(self, target: str) -> None:
        if target != "postgres":
            return  # MariaDB and SQLite compare text with numbers by converting, as T-SQL does
        for node in list(
            self.statement.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
        ):
            left, right = node.this, node.expression
            kinds = (self.kind(left), self.kind(right))
            if kinds == (NUMBER, TEXT):
                right.replace(exp.cast(right.copy(), "NUMERIC"))
            elif kinds == (TEXT, NUMBER):
                left.replace(exp.cast(left.copy(), "NUMERIC"))


# -- `+` on text -----------------------------------------------------------------------------------
def _concatenation(statement: exp.Expr, catalogue: Catalogue) -> None:
    kinds = _Kinds(statement, catalogue)
    # Innermost first, so that `'a' + x + 'b'` sees its left side already a concatenation.
    for node in list(statement.find_all(exp.Add, bfs=False))[::-1]:
        left, right = node.this, node.expression
        sides = (kinds.kind(left), kinds.kind(right))
        if TEXT in sides and NUMBER not in sides:
            node.replace(exp.DPipe(this=left, expression=right, safe=True))


# -- markup --------------------------------------------------------------------------------------
# A tag in a literal: `<id>`, `</key>`, `<br/>`, or one whose attributes follow (`<a href=`);
# `'x < 5'` or `'a<b'` are not markup.
_TAG = re.compile(r"</?[A-Za-z_][\w.:-]*(?:>|/>|\s+[\w.:-]+\s*=)")


def _is_markup_text(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and node.is_string and bool(_TAG.search(node.this))


def _xml_escaped(node: exp.Expr, target: str) -> exp.Expr:
    text_type = {"mysql": "CHAR", "tsql": "NVARCHAR(MAX)"}.get(target, "TEXT")
    escaped: exp.Expr = exp.cast(node.copy(), exp.DataType.build(text_type, dialect="tsql"))
    for char, entity in _XML_ESCAPES:
        escaped = exp.Anonymous(
            this="REPLACE",
            expressions=[escaped, exp.Literal.string(char), exp.Literal.string(entity)],
        )
    return escaped


class _Markup:
    """Columns the SQL builds as markup; the data spliced into them is escaped in place."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.names: set[str] = set()

    def run(self, statement: exp.Expr) -> frozenset[str]:
        selects = [s for s in statement.find_all(exp.Select, bfs=False)][::-1]
        top: set[str] = set()
        for select in selects:
            for projection in select.expressions:
                if self.markup(projection.unalias()):
                    self.names.add(projection.alias_or_name.lower())
                    if select is statement or select.parent is statement:
                        top.add(projection.alias_or_name.lower())
        return frozenset(top)

    def markup(self, node: exp.Expr) -> bool:
        if isinstance(node, exp.Paren):
            return self.markup(node.this)
        if _is_markup_text(node):
            return True
        if isinstance(node, exp.Column):
            return node.name.lower() in self.names
        if isinstance(node, exp.GroupConcat | exp.Max | exp.Min):
            return self.markup(node.this)
        if isinstance(node, exp.DPipe | exp.Concat | exp.Coalesce | exp.Case):
            if isinstance(node, exp.DPipe):
                parts = _flatten(node)
            elif isinstance(node, exp.Case):
                parts = [i.args["true"] for i in node.args.get("ifs") or []]
                if node.args.get("default") is not None:
                    parts.append(node.args["default"])
            elif isinstance(node, exp.Coalesce):
                parts = [node.this, *node.expressions]
            else:
                parts = list(node.expressions)
            flags = [self.markup(p) for p in parts]
            if not any(flags):
                return False
            for part, is_markup in zip(parts, flags, strict=True):
                if not is_markup and not (isinstance(part, exp.Literal | exp.Null)):
                    part.replace(_xml_escaped(part, self.target))
            return True
        return False


def _flatten(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.DPipe):
        return [*_flatten(node.this), *_flatten(node.expression)]
    return [node]


# -- OPENJSON --------------------------------------------------------------------------------------
_PATH = re.compile(r"""\.(?:([A-Za-z_$][\w$]*)|"((?:[^"\\]|\\.)*)")|\[(\d+)\]""")


def _path_steps(path: str) -> list[str]:
    """`$.a."b c"[0]` → ['a', 'b c', '0']; `lax` is the default, `strict` is refused."""
    text = path.strip()
    if text.lower().startswith("strict"):
        raise UnsupportedError(f"OPENJSON strict paths ({path!r})")
    if text.lower().startswith("lax"):
        text = text[3:].strip()
    if not text.startswith("$"):
        raise UnsupportedError(f"the JSON path {path!r}")
    steps, at = [], 1
    while at < len(text):
        match = _PATH.match(text, at)
        if match is None:
            raise UnsupportedError(f"the JSON path {path!r}")
        steps.append(next(g for g in match.groups() if g is not None))
        at = match.end()
    return steps


def _pg_path(path: str) -> str:
    steps = _path_steps(path)
    return (
        "'{" + ",".join('"' + s.replace('"', '\\"').replace("'", "''") + '"' for s in steps) + "}'"
    )


def _literal_path(node: exp.Expr | None, what: str) -> str | None:
    if node is None or node is False or (isinstance(node, exp.Boolean)):
        return None
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    raise UnsupportedError(f"{what}: a JSON path that is not a literal")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _openjson(statement: exp.Expr, target: str) -> None:
    for number, node in enumerate(list(statement.find_all(exp.OpenJSON)), 1):
        holder = node.parent
        assert holder is not None  # _refuse() let only FROM/APPLY positions through
        alias = holder.alias if isinstance(holder, exp.Lateral | exp.Table) else ""
        alias = alias or f"openjson_{number}"  # T-SQL lets it go unnamed
        join = holder.parent if isinstance(holder.parent, exp.Join) else None
        outer = isinstance(holder, exp.Lateral) and not holder.args.get("cross_apply")
        document = node.this
        while isinstance(document, exp.Subquery) and isinstance(document.this, exp.Select):
            inner = document.this
            if inner.args.get("from_") or inner.args.get("from") or len(inner.expressions) != 1:
                break
            document = inner.expressions[0].unalias()  # `(SELECT A.jsonData)` is A.jsonData
        doc = document.sql(dialect=target, identify=target != "sqlite")
        path = _literal_path(node.args.get("path"), "OPENJSON")
        schema = list(node.expressions)
        if target == "postgres":
            source = _pg_openjson(doc, path, schema, alias)
            substitutes: dict[str, str] = {}
        elif target == "sqlite":
            source, substitutes = _sqlite_openjson(doc, path, schema, alias)
        else:
            source, substitutes = _mysql_openjson(doc, path, schema, alias)
        owner = holder.find_ancestor(exp.Select)
        replacement = exp.Var(this=source)
        if join is not None:
            join.replace(
                exp.Join(this=replacement, side="LEFT", on=exp.true())
                if outer
                else exp.Join(this=replacement, kind="CROSS")
            )
        else:
            holder.replace(replacement)
        if substitutes:
            if owner is not None and any(
                isinstance(p, exp.Star)
                or (
                    isinstance(p, exp.Column)
                    and isinstance(p.this, exp.Star)
                    and (not p.table or p.table.lower() == alias.lower())
                )
                for p in owner.expressions
            ):
                raise UnsupportedError(
                    "SELECT * over OPENJSON (its columns are rewritten here): name them"
                )
            for column in list(statement.find_all(exp.Column)):
                # Its own columns: `B.value` anywhere, `value` in the SELECT that applies it.
                if column.table.lower() == alias.lower() or (
                    not column.table
                    and column.name.lower() in substitutes
                    and column.find_ancestor(exp.Select) is owner
                ):
                    text = substitutes.get(column.name.lower())
                    if text is None:
                        raise UnsupportedError(f"OPENJSON has no column {column.name}")
                    value: exp.Expr = exp.Var(this=f"({text})")
                    if isinstance(column.parent, exp.Select):
                        value = exp.alias_(value, column.name, quoted=True)
                    column.replace(value)


def _with_columns(schema: list[exp.Expr]) -> list[tuple[str, exp.DataType, str, bool]]:
    out = []
    for definition in schema:
        path = _literal_path(definition.args.get("path"), f"OPENJSON column {definition.name}")
        out.append(
            (definition.name, definition.args["kind"], path or f"$.{definition.name}",
             bool(definition.args.get("as_json")))
        )  # fmt: skip
    return out


def _pg_openjson(doc: str, path: str | None, schema: list[exp.Expr], alias: str) -> str:
    j = f"CAST({doc} AS json)" + (f" #> {_pg_path(path)}" if path else "")
    if not schema:
        kind = (
            "CASE json_typeof(v) WHEN 'null' THEN 0 WHEN 'string' THEN 1 WHEN 'number' THEN 2 "
            "WHEN 'boolean' THEN 3 WHEN 'array' THEN 4 ELSE 5 END"
        )
        return (
            f"LATERAL (SELECT k AS \"key\", CASE json_typeof(v) WHEN 'null' THEN NULL "
            f"WHEN 'string' THEN v #>> '{{}}' ELSE CAST(v AS text) END AS \"value\", "
            f'{kind} AS "type" FROM (SELECT e.key AS k, e.value AS v FROM json_each(CASE WHEN '
            f"json_typeof({j}) = 'object' THEN {j} END) AS e UNION ALL SELECT "
            f"CAST(a.n - 1 AS text), a.value FROM json_array_elements(CASE WHEN json_typeof({j}) "
            f"= 'array' THEN {j} END) WITH ORDINALITY AS a(value, n)) AS s) AS \"{alias}\""
        )
    columns = []
    for name, declared, column_path, as_json in _with_columns(schema):
        value: str
        if as_json:
            value = f"CAST(e.value #> {_pg_path(column_path)} AS text)"
        else:
            value = exp.cast(exp.Var(this=f"(e.value #>> {_pg_path(column_path)})"), declared).sql(
                "postgres"
            )
        columns.append(f'{value} AS "{name}"')
    return (
        f"LATERAL (SELECT {', '.join(columns)} FROM json_array_elements(CASE WHEN "
        f"json_typeof({j}) = 'array' THEN {j} WHEN json_typeof({j}) = 'object' "
        f'THEN json_build_array({j}) END) AS e) AS "{alias}"'
    )


def _sqlite_openjson(
    doc: str, path: str | None, schema: list[exp.Expr], alias: str
) -> tuple[str, dict[str, str]]:
    if path:
        _path_steps(path)  # refuses what it cannot read
    a = f'"{alias}"'
    if not schema:
        source = f"json_each({doc}{', ' + _sql_string(path) if path else ''}) AS {a}"
        return source, {
            "key": f"CAST({a}.key AS TEXT)",
            "value": (
                f"CASE {a}.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"ELSE CAST({a}.value AS TEXT) END"
            ),
            "type": (
                f"CASE {a}.type WHEN 'null' THEN 0 WHEN 'text' THEN 1 WHEN 'integer' THEN 2 "
                f"WHEN 'real' THEN 2 WHEN 'true' THEN 3 WHEN 'false' THEN 3 WHEN 'array' THEN 4 "
                "ELSE 5 END"
            ),
        }
    j = f"json_extract({doc}, {_sql_string(path)})" if path else doc
    source = (
        f"json_each(CASE json_type({j}) WHEN 'array' THEN {j} "
        f"WHEN 'object' THEN json_array(json({j})) END) AS {a}"
    )
    substitutes = {}
    for name, kind, column_path, as_json in _with_columns(schema):
        value = f"json_extract({a}.value, {_sql_string(column_path)})"
        substitutes[name.lower()] = (
            value if as_json else exp.cast(exp.Var(this=value), kind).sql("sqlite")
        )
    return source, substitutes


def _mysql_openjson(
    doc: str, path: str | None, schema: list[exp.Expr], alias: str
) -> tuple[str, dict[str, str]]:
    if path:
        _path_steps(path)
    j = f"JSON_EXTRACT({doc}, {_sql_string(path)})" if path else doc
    a = f"`{alias}`"
    if schema:
        columns = []
        for name, kind, column_path, as_json in _with_columns(schema):
            kind_sql = "JSON" if as_json else kind.sql("mysql")
            if kind_sql.upper().startswith(("VARCHAR", "CHAR", "TEXT")) and "(" not in kind_sql:
                kind_sql = "LONGTEXT"
            columns.append(f"`{name}` {kind_sql} PATH {_sql_string(column_path)}")
        source = (
            f"JSON_TABLE(CASE JSON_TYPE({j}) WHEN 'ARRAY' THEN {j} "
            f"WHEN 'OBJECT' THEN CONCAT('[', {j}, ']') END, "
            f"'$[*]' COLUMNS ({', '.join(columns)})) AS {a}"
        )
        return source, {}
    is_object = f"JSON_TYPE({j}) = 'OBJECT'"
    source = (
        f"JSON_TABLE(CASE WHEN {is_object} THEN JSON_KEYS({j}) ELSE {j} END, "
        f"'$[*]' COLUMNS (n FOR ORDINALITY, k VARCHAR(4000) PATH '$')) AS {a}"
    )
    member = (
        f"JSON_EXTRACT({j}, CASE WHEN {is_object} THEN CONCAT('$.\"', {a}.k, '\"') "
        f"ELSE CONCAT('$[', {a}.n - 1, ']') END)"
    )
    return source, {
        "key": f"CASE WHEN {is_object} THEN {a}.k ELSE CAST({a}.n - 1 AS CHAR) END",
        "value": f"CASE JSON_TYPE({member}) WHEN 'NULL' THEN NULL ELSE JSON_UNQUOTE({member}) END",
        "type": (
            f"CASE JSON_TYPE({member}) WHEN 'NULL' THEN 0 WHEN 'STRING' THEN 1 "
            "WHEN 'INTEGER' THEN 2 WHEN 'DOUBLE' THEN 2 WHEN 'DECIMAL' THEN 2 "
            "WHEN 'BOOLEAN' THEN 3 WHEN 'ARRAY' THEN 4 ELSE 5 END"
        ),
    }


def tables_named(sql: str) -> Iterable[tuple[str | None, str]]:
    """The (schema, table) pairs a T-SQL text names, for a catalogue to look up first."""
    try:
        statements = sqlglot.parse(sql, read="tsql", error_level=ErrorLevel.IGNORE)
    except ParseError:
        return []
    return [
        (t.text("db") or None, t.name)
        for s in statements
        if s
        for t in s.find_all(exp.Table)
        if isinstance(t.this, exp.Identifier)
    ]


def catalogue_for(connection: Connection, known: Iterable[Table] = ()) -> Catalogue:
    """A catalogue read from `connection` (SQLAlchemy) on demand, names matched ignoring case
    as SQL Server's default collation matches them."""
    inspector = inspect(connection)
    schemas: list[str] | None = None
    found: dict[tuple[str | None, str], Table | None] = {}

    def matching(wanted: str, names: Iterable[str]) -> str | None:
        names = list(names)
        if wanted in names:
            return wanted
        same = [n for n in names if n.lower() == wanted.lower()]
        if len(same) > 1:
            raise UnsupportedError(
                f"{wanted} matches {', '.join(sorted(same))}: SQL Server would not tell them apart"
            )
        return same[0] if same else None

    def find(schema: str | None, name: str) -> Table | None:
        nonlocal schemas
        key = (schema.lower() if schema else None, name.lower())
        if key in found:
            return found[key]
        real_schema = None
        if schema is not None:
            if schemas is None:
                schemas = list(inspector.get_schema_names())
            real_schema = matching(schema, schemas)
            if real_schema is None:
                found[key] = None
                return None
        names = [*inspector.get_table_names(real_schema), *inspector.get_view_names(real_schema)]
        real_name = matching(name, names)
        table = None
        if real_name is not None:
            table = Table(
                real_schema,
                real_name,
                {
                    c["name"]: _kind_of_sqlalchemy(c["type"])
                    for c in inspector.get_columns(real_name, real_schema)
                },
            )
        found[key] = table
        return table

    return Catalogue(find, {t.name.lower(): t for t in known})


def _kind_of_sqlalchemy(kind: Any) -> str:
    if isinstance(kind, sqltypes.Integer | sqltypes.Numeric | sqltypes.Float):
        return NUMBER
    if isinstance(kind, sqltypes.String):
        return TEXT
    return ""
