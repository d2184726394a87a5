"""One model row by equality on fixed columns, without building an ORM query each call.

The real-time path loads the same two rows shapes on every request (the Basic user, the flow
by name). Django compiles a QuerySet's SQL anew each time, which costs several times the
SQLite lookup itself; `RowGetter` builds the SELECT once per database connection and applies
the same converters the ORM would, so the instance is as fresh and as typed as a
`.filter(...).first()` would give.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import Model

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
        fields: list[Any] = (
            [meta.get_field(name) for name in self.fields]
            if self.fields
            else list(meta.concrete_fields)
        )
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

    def get(self, *values: Any) -> M | None:
        using = router.db_for_read(self.model)
        connection = connections[using]
        sql, where, converters, attnames = self._plan(connection)
        params = [f.get_db_prep_value(v, connection) for f, v in zip(where, values, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for index, col, found in converters:
            value = row[index]
            for convert in found:
                value = convert(value, col, connection)
            row[index] = value
        return self.model.from_db(using, attnames, row)
