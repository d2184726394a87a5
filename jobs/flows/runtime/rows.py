"""Reading and writing rows of fixed shapes without building an ORM query each call.

The real-time path loads the same two row shapes on every request (the Basic user, the flow
by name), and the recorder inserts every run. Django compiles a QuerySet's SQL anew each time,
which costs several times the SQLite work itself; `RowGetter` builds the SELECT once per
database connection and applies the same converters the ORM would, so the instance is as fresh
and as typed as a `.filter(...).first()` would give; `RowInserter` does the same for INSERTs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import DateField, Field, Model

M = TypeVar("M", bound=Model)


class RowGetter(Generic[M]):
    def __init__(self, model: type[M], where: Sequence[str], fields: Sequence[str] = ()) -> None:
        self.model = model
        self.where = tuple(where)
        self.fields = tuple(fields)
        self._local = threading.local()

    def _plan(self, connection: Any) -> tuple[str, list, list, list[str]]:
        plan = getattr(self._local, "plan", None)
        if plan is not None and plan[0] is connection:
            return plan[1]
        meta = self.model._meta
        table = meta.db_table
        wanted = {meta.get_field(name) for name in self.fields}
        # In the model's own order: Model.from_db matches values to fields by position.
        fields: list[Any] = [f for f in meta.concrete_fields if not wanted or f in wanted]
        where: list[Any] = [meta.get_field(name) for name in self.where]
        quote = connection.ops.quote_name
        sql = (
            f"SELECT {', '.join(f'{quote(table)}.{quote(f.column)}' for f in fields)} "
            f"FROM {quote(table)} "
            f"WHERE {' AND '.join(f'{quote(table)}.{quote(f.column)} = %s' for f in where)} "
            "LIMIT 1"
        )
        converters = []
        for index, field in enumerate(fields):
            col = field.get_col(table)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((index, col, found))
        built = (sql, where, converters, [f.attname for f in fields])
        self._local.plan = (connection, built)
        return built

    def row(self, *values: Any) -> tuple | None:
        """The row's values as the database driver gives them: no conversion, no instance."""
        connection = connections[router.db_for_read(self.model)]
        sql, where, _, _ = self._plan(connection)
        params = [f.get_db_prep_value(v, connection) for f, v in zip(where, values, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def get(self, *values: Any) -> M | None:
        using = router.db_for_read(self.model)
        connection = connections[using]
        _, _, converters, attnames = self._plan(connection)
        found = self.row(*values)
        if found is None:
            return None
        row = list(found)
        for index, col, found in converters:
            value = row[index]
            for convert in found:
                value = convert(value, col, connection)
            row[index] = value
        return self.model.from_db(using, attnames, row)


class RowInserter(Generic[M]):
    """INSERT of new model instances with the statement built once per database connection.

    `bulk_create` compiles a multi-row INSERT anew for every call, which cost the embedded
    recorder more than SQLite's work; this prepares each value as `bulk_create` would
    (`pre_save`, `get_db_prep_save`) and reuses the SQL. Where that preparation leaves a value
    as it is (a str for a text column, an int or bool for a number, None for a nullable
    column) the value is taken as it is: Django's generic per-field path was three times the
    cost of the INSERT itself.
    """

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._local = threading.local()

    def _plan(self, connection: Any) -> tuple[str, list]:
        plan = getattr(self._local, "plan", None)
        if plan is not None and plan[0] is connection:
            return plan[1]
        meta = self.model._meta
        quote = connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        built = (sql, [_preparer(f, connection) for f in fields])
        self._local.plan = (connection, built)
        return built

    def insert(self, objs: Sequence[M]) -> None:
        """Insert `objs` in one `executemany` (their primary keys are not read back)."""
        if not objs:
            return
        connection = connections[router.db_for_write(self.model)]
        sql, preparers = self._plan(connection)
        rows = [[prepare(obj) for prepare in preparers] for obj in objs]
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


# Field types whose database value is the Python value itself when it already has the type.
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "CharField": (str,),
    "TextField": (str,),
    "BooleanField": (bool,),
    "IntegerField": (int,),
    "BigIntegerField": (int,),
    "SmallIntegerField": (int,),
    "PositiveIntegerField": (int,),
    "PositiveBigIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
    "ForeignKey": (int,),
    "FloatField": (float, int),
}


def _has_pre_save(field: Any) -> bool:
    if type(field).pre_save is Field.pre_save:
        return False
    # A date field's own pre_save only fills in auto_now / auto_now_add.
    return not isinstance(field, DateField) or field.auto_now or field.auto_now_add


def _preparer(field: Any, connection: Any) -> Any:
    """`obj -> database value` for one field, as `bulk_create` would prepare it."""
    attname = field.attname
    if _has_pre_save(field):  # auto_now, file fields…
        return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), connection)
    plain = _PLAIN_TYPES.get(field.get_internal_type())
    if plain is None or field.get_db_converters(connection):
        return lambda obj: field.get_db_prep_save(getattr(obj, attname), connection)

    def prepare(obj: Any) -> Any:
        value = getattr(obj, attname)
        if type(value) in plain or (value is None and field.null):
            return value
        return field.get_db_prep_save(value, connection)

    return prepare
