"""DataFilter: keep the rows a SQL condition accepts, or whose column matches a pattern.

FilterType (the vendor's numbers; only 3 appears in exports, the rest is the gateway's
choice, see docs/pipeline.md): 0 SQL condition, 1 equals, 2 contains, 3 regular expression.
"""

from __future__ import annotations

import re
from itertools import compress
from operator import itemgetter
from typing import Any

from jobs.expressions import ExpressionError
from jobs.pipeline.base import Component, column_position, first_of, flag, register
from jobs.pipeline.sql import BatchExpression
from jobs.pipeline.types import ConversionError, convert
from jobs.regex import RegexError, compile_linear
from jobs.systems.batch import Batch, Column

SQL, EQUALS, CONTAINS, REGEX = 0, 1, 2, 3
FILTER_TYPES = {
    "0": SQL, "sql": SQL, "sqlfilter": SQL, "sqlexpression": SQL, "condition": SQL,
    "1": EQUALS, "equals": EQUALS, "equal": EQUALS, "value": EQUALS,
    "2": CONTAINS, "contains": CONTAINS,
    "3": REGEX, "regex": REGEX, "regularexpression": REGEX, "regexfilter": REGEX,
}  # fmt: skip
_TEXT = Column("filter", "string")
_TEXTS = {str, type(None)}


@register
class DataFilter(Component):
    name = "DataFilter"
    aliases = ("Filter", "DataRowFilter")

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        raw_type = re.sub(r"[\s_\-]", "", str(first_of(config, "FilterType", default=0))).lower()
        if raw_type not in FILTER_TYPES:
            raise self.fail(
                f"unknown FilterType {config.get('FilterType')!r} "
                "(0 SQL condition, 1 equals, 2 contains, 3 regular expression)"
            )
        self.filter_type = FILTER_TYPES[raw_type]
        self.text = str(first_of(config, "Filter", "SQLExpression", "Expression", default=""))
        if not self.text.strip():
            raise self.fail("Filter is empty")
        self.ignore_case = flag(config, "RegexIgnoreCase")
        self.keep_on_error = flag(config, "KeepRowOnConvertionError") or flag(
            config, "KeepRowOnConversionError"
        )
        self.keep_on_empty = flag(config, "KeepRowOnNullOrEmpty")
        self.column = str(first_of(config, "Column", "ColumnName", default="")).strip()
        if self.filter_type == SQL:
            self.condition = BatchExpression(self.text, condition=True)
            try:
                self.condition.check()
            except ExpressionError as exc:
                raise self.fail(str(exc)) from None
            return
        if not self.column:
            raise self.fail("a value or regular expression filter needs a Column")
        if self.filter_type == REGEX:
            # .NET's RegexOptions.Singleline lets `.` match a newline, as Python's DOTALL does.
            try:
                self.pattern = compile_linear(
                    self.text,
                    ignore_case=self.ignore_case,
                    dot_all=flag(config, "RegexSingleLine"),
                    multiline=flag(config, "RegexMultiLine"),
                )
            except RegexError as exc:
                raise self.fail(f"the regular expression {self.text!r} is invalid: {exc}") from None

    def apply(self, batch: Batch) -> Batch:
        if self.filter_type == SQL:
            try:
                return Batch(batch.columns, self.condition.keep(batch))
            except ExpressionError as exc:
                raise self.fail(str(exc)) from None
        try:
            position = column_position(batch, self.column)
        except KeyError:
            raise self.fail(
                f"column '{self.column}' is not in the data ({', '.join(batch.names)})"
            ) from None
        values = list(map(itemgetter(position), batch.rows))
        if self.filter_type == REGEX and set(map(type, values)) <= _TEXTS:
            # Text only (message bodies, as a rule): no conversion to try, one C call a row.
            search, empty = self.pattern.search, self.keep_on_empty
            keep = [search(v) is not None if v else empty for v in values]
        else:
            keep = list(map(self._keeps, values))
        return Batch(batch.columns, list(compress(batch.rows, keep)))

    def _keeps(self, value: Any) -> bool:
        if value is None:
            return self.keep_on_empty
        try:
            text = convert(value, _TEXT)
        except ConversionError:
            return self.keep_on_error
        if text == "":
            return self.keep_on_empty
        if self.filter_type == REGEX:
            return self.pattern.search(text) is not None
        expected = self.text
        if self.ignore_case:
            text, expected = text.lower(), expected.lower()
        return text == expected if self.filter_type == EQUALS else expected in text
