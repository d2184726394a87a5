"""A column-at-a-time evaluator for the simplest SQL expressions, giving SQLite's answers.

Pipelines run on every row a reader reads, so the common shapes (column arithmetic, a
comparison, AND/OR/NOT, IN a list, IS NULL, ||, coalesce) are evaluated here over whole
columns with C-level `map`, not row by row through SQLite. It is a parser into a tree of
operations, never Python eval. Anything it does not reproduce exactly (other functions, LIKE,
%, values that are not int, float or str, a 64-bit overflow) raises `Unsupported`, and the
caller evaluates that expression, or that batch, in the shared SQLite language instead.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Unsupported(Exception):
    """This expression or these values are for SQLite, not for the fast path."""


# --- parsing ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<string>'(?:[^']|'')*')"
    r'|(?P<quoted>"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`)'
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)"
    r"|(?P<op>\|\||<=|>=|<>|!=|==|[-+*/=<>(),])"
    r")"
)


@dataclass(frozen=True)
class Node:
    kind: str  # const, column, unary, binary, not, isnull, in, call
    value: Any = None
    args: tuple[Node, ...] = ()


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported(f"unexpected text at {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def keyword(self, *words: str) -> bool:
        kind, text = self.peek()
        if kind == "word" and text.upper() in words:
            self.at += 1
            return True
        return False

    def symbol(self, *symbols: str) -> str | None:
        kind, text = self.peek()
        if kind == "op" and text in symbols:
            self.at += 1
            return text
        return None

    def parse(self) -> Node:
        node = self.or_()
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.keyword("OR"):
            node = Node("or", args=(node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.keyword("AND"):
            node = Node("and", args=(node, self.not_()))
        return node

    def not_(self) -> Node:
        if self.keyword("NOT"):
            return Node("not", args=(self.not_(),))
        return self.equality()

    def equality(self) -> Node:
        node = self.relational()
        while True:
            op = self.symbol("=", "==", "!=", "<>")
            if op is not None:
                node = Node("binary", "=" if op == "==" else ("!=" if op == "<>" else op),
                            (node, self.relational()))  # fmt: skip
                continue
            if self.keyword("IS"):
                negated = self.keyword("NOT")
                if not self.keyword("NULL"):
                    raise Unsupported("IS other than IS [NOT] NULL")
                node = Node("isnull", not negated, (node,))
                continue
            if self.peek()[0] == "word" and self.peek()[1].upper() == "NOT":
                if self.peek(1)[0] == "word" and self.peek(1)[1].upper() == "IN":
                    self.at += 2
                    node = Node("not", args=(self.in_list(node),))
                    continue
                raise Unsupported("NOT here")
            if self.keyword("IN"):
                node = self.in_list(node)
                continue
            if self.peek()[0] == "word" and self.peek()[1].upper() in (
                "LIKE", "GLOB", "REGEXP", "MATCH", "BETWEEN", "ISNULL", "NOTNULL", "COLLATE",
                "ESCAPE",
            ):  # fmt: skip
                raise Unsupported(self.peek()[1])
            return node

    def in_list(self, subject: Node) -> Node:
        if not self.symbol("("):
            raise Unsupported("IN without a list")
        items = [self.or_()]
        while self.symbol(","):
            items.append(self.or_())
        if not self.symbol(")"):
            raise Unsupported("unclosed IN list")
        if any(item.kind != "const" for item in items):
            raise Unsupported("IN over expressions")
        return Node("in", tuple(item.value for item in items), (subject,))

    def relational(self) -> Node:
        node = self.additive()
        while (op := self.symbol("<", "<=", ">", ">=")) is not None:
            node = Node("binary", op, (node, self.additive()))
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while (op := self.symbol("+", "-")) is not None:
            node = Node("binary", op, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> Node:
        node = self.concat()
        while (op := self.symbol("*", "/")) is not None:
            node = Node("binary", op, (node, self.concat()))
        return node

    def concat(self) -> Node:
        node = self.unary()
        while self.symbol("||"):
            node = Node("binary", "||", (node, self.unary()))
        return node

    def unary(self) -> Node:
        op = self.symbol("-", "+")
        if op is not None:
            operand = self.unary()
            if operand.kind == "const" and isinstance(operand.value, int | float):
                return Node("const", -operand.value if op == "-" else operand.value)
            return Node("unary", op, (operand,)) if op == "-" else operand
        return self.primary()

    def primary(self) -> Node:
        kind, text = self.peek()
        self.at += 1
        if kind == "number":
            is_real = any(c in text for c in ".eE")
            return Node("const", float(text) if is_real else _int64(int(text)))
        if kind == "string":
            return Node("const", text[1:-1].replace("''", "'"))
        if kind == "quoted":
            body = text[1:-1]
            return Node("column", body.replace(text[0] * 2, text[0]) if text[0] != "[" else body)
        if kind == "word":
            upper = text.upper()
            if upper == "NULL":
                return Node("const", None)
            if upper in ("TRUE", "FALSE"):
                return Node("const", 1 if upper == "TRUE" else 0)
            if self.symbol("("):
                return self.call(text.lower())
            if upper in _RESERVED:
                raise Unsupported(upper)
            return Node("column", text)
        if kind == "op" and text == "(":
            node = self.or_()
            if not self.symbol(")"):
                raise Unsupported("unclosed parenthesis")
            return node
        raise Unsupported(f"unexpected {text!r}")

    def call(self, name: str) -> Node:
        if name not in ("coalesce", "ifnull"):
            raise Unsupported(f"function {name}()")
        args = [self.or_()]
        while self.symbol(","):
            args.append(self.or_())
        if not self.symbol(")"):
            raise Unsupported("unclosed call")
        if len(args) < 2 or (name == "ifnull" and len(args) != 2):
            raise Unsupported("argument count")  # SQLite's own error message is better
        return Node("call", name, tuple(args))


_RESERVED = {"CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "SELECT", "EXISTS", "DISTINCT",
             "AND", "OR", "NOT", "IS", "IN", "LIKE", "BETWEEN", "COLLATE", "ESCAPE"}  # fmt: skip


def _int64(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise Unsupported("integer literal beyond 64 bits")
    return value


def parse(expression: str) -> Node:
    """The expression's tree; raises Unsupported for anything the fast path does not do."""
    return _Parser(expression).parse()


def columns_of(node: Node) -> set[str]:
    if node.kind == "column":
        return {str(node.value).lower()}
    found: set[str] = set()
    for arg in node.args:
        found |= columns_of(arg)
    return found


# --- evaluation over columns ---------------------------------------------------------------

NONE: type = type(None)


class Values:
    """A column of values (or one value standing for every row) and the Python types in it.

    Comparisons produce bools internally (C-level `operator.ge`); SQLite's answer is 1/0, and
    `result()` turns them into ints where that shows.
    """

    __slots__ = ("const", "kinds", "values")

    def __init__(self, values: list[Any] | None, kinds: frozenset[type], const: Any = None):
        self.values = values
        self.kinds = kinds
        self.const = const

    @classmethod
    def constant(cls, value: Any) -> Values:
        return cls(None, frozenset({type(value)}), value)

    @classmethod
    def column(cls, values: list[Any]) -> Values:
        kinds = frozenset(map(type, values))
        _check_finite(values, kinds)
        return cls(values, kinds)

    @property
    def is_const(self) -> bool:
        return self.values is None

    @property
    def has_null(self) -> bool:
        return NONE in self.kinds

    def expand(self, count: int) -> list[Any]:
        return [self.const] * count if self.values is None else self.values

    def result(self, count: int) -> list[Any]:
        """The values as SQLite would give them: comparisons and logic as 1/0."""
        values = self.expand(count)
        if bool in self.kinds:
            return [int(v) if type(v) is bool else v for v in values]
        return values


def _check_finite(values: list[Any], kinds: frozenset[type]) -> None:
    """SQLite stores NaN as NULL and infinities arise from it: leave those values to SQLite.

    One C-level sum finds them (and, rarely, a finite overflow, which SQLite then answers).
    """
    if float not in kinds:
        return
    if not kinds <= NUMERIC:
        raise Unsupported("floats mixed with other values")
    if not math.isfinite(sum(filter(None, values) if NONE in kinds else values)):
        raise Unsupported("an infinite or NaN value")


NUMERIC = frozenset({int, float, bool, NONE})
INTEGRAL = frozenset({int, bool, NONE})
STRINGS = frozenset({str, NONE})
PRINTABLE = frozenset({str, int, NONE})


FLOATS = frozenset({float, NONE})
_EXACT = 2**53  # every int up to this size is a float exactly


def _float_const(const: Values, other: Values) -> Values:
    """An int constant beside a column of floats, as the equal float. Python's float-with-int
    operations use the int's exact value, and an int within 2**53 is exactly that float, so
    every answer is the same; float with float is the faster C path."""
    value = const.const
    if type(value) is int and other.kinds <= FLOATS and -_EXACT <= value <= _EXACT:
        return Values.constant(float(value))
    return const


def _pairwise(fn: Callable[[Any, Any], Any], left: Values, right: Values, count: int) -> list:
    """fn over two operands, NULL in → NULL out; C-level map when there is no NULL."""
    if (left.is_const and left.const is None) or (right.is_const and right.const is None):
        return [None] * count
    if right.is_const and not left.is_const:
        right = _float_const(right, left)
    elif left.is_const and not right.is_const:
        left = _float_const(left, right)
    nulls = left.has_null or right.has_null
    if left.is_const:
        if not nulls:
            return list(map(fn, repeat(left.const), right.values))  # type: ignore[arg-type]
        return [None if r is None else fn(left.const, r) for r in right.values]  # type: ignore[union-attr]
    if right.is_const:
        if not nulls:
            return list(map(fn, left.values, repeat(right.const)))  # type: ignore[arg-type]
        return [None if v is None else fn(v, right.const) for v in left.values]  # type: ignore[union-attr]
    if not nulls:
        return list(map(fn, left.values, right.values))  # type: ignore[arg-type]
    return [
        None if a is None or b is None else fn(a, b)
        for a, b in zip(left.values, right.values, strict=True)  # type: ignore[arg-type]
    ]


def _sql_divide(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)  # SQLite truncates toward zero, as C does
        return quotient if (a < 0) == (b < 0) else -quotient
    return a / b


def _truth(value: Any) -> bool | None:
    return None if value is None else value != 0


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _sql_divide,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class FastExpression:
    """A parsed expression evaluated column by column over a batch's rows."""

    def __init__(self, expression: str) -> None:
        self.tree = parse(expression)
        self.names = columns_of(self.tree)

    def evaluate(self, columns: dict[str, Any], count: int) -> Values:
        """The expression over `columns` (lowercased name → Values, or a plain list of
        values); raises Unsupported."""
        return self._eval(self.tree, columns, count)

    def _eval(self, node: Node, columns: dict[str, Any], count: int) -> Values:
        kind = node.kind
        if kind == "const":
            return Values.constant(node.value)
        if kind == "column":
            values = columns.get(str(node.value).lower())
            if values is None:
                raise Unsupported(f"unknown column {node.value}")
            return values if isinstance(values, Values) else Values.column(values)
        if kind == "binary":
            left = self._eval(node.args[0], columns, count)
            right = self._eval(node.args[1], columns, count)
            return self._binary(node.value, left, right, count)
        if kind == "unary":
            operand = self._eval(node.args[0], columns, count)
            if not operand.kinds <= NUMERIC:
                raise Unsupported("minus on a non-number")
            return self._arithmetic("*", operand, Values.constant(-1), count)
        if kind in ("and", "or"):
            left_truths = self._truths(self._eval(node.args[0], columns, count), count)
            right_truths = self._truths(self._eval(node.args[1], columns, count), count)
            combine = _and if kind == "and" else _or
            combined = [combine(a, b) for a, b in zip(left_truths, right_truths, strict=True)]
            return Values(combined, frozenset({bool, NONE}))
        if kind == "not":
            truths = self._truths(self._eval(node.args[0], columns, count), count)
            return Values([None if t is None else not t for t in truths], frozenset({bool, NONE}))
        if kind == "isnull":
            operand = self._eval(node.args[0], columns, count)
            wanted = node.value
            values = [(v is None) == wanted for v in operand.expand(count)]
            return Values(values, frozenset({bool}))
        if kind == "in":
            return self._in(node, self._eval(node.args[0], columns, count), count)
        if kind == "call":
            args = [self._eval(arg, columns, count) for arg in node.args]
            kinds = frozenset().union(*(a.kinds for a in args))
            lists = [a.expand(count) for a in args]
            values = [
                next((v for v in row if v is not None), None) for row in zip(*lists, strict=True)
            ]
            return Values(values, kinds)
        raise Unsupported(kind)

    def _arithmetic(self, op: str, left: Values, right: Values, count: int) -> Values:
        if not (left.kinds <= NUMERIC and right.kinds <= NUMERIC):
            raise Unsupported("arithmetic on non-numbers")
        if left.is_const and right.is_const:
            if left.const is None or right.const is None:
                return Values.constant(None)
            return Values.constant(_ARITHMETIC[op](left.const, right.const))
        values = _pairwise(_ARITHMETIC[op], left, right, count)
        nulls = left.has_null or right.has_null or op == "/"
        if left.kinds <= INTEGRAL and right.kinds <= INTEGRAL:
            present = [v for v in values if v is not None] if nulls else values
            # SQLite turns an integer result past 64 bits into a REAL; leave that to it.
            if present and (max(present) > INT64_MAX or min(present) < INT64_MIN):
                raise Unsupported("64-bit overflow")
            return Values(values, frozenset({int, NONE}) if nulls else frozenset({int}))
        if op == "/":
            return Values.column(values)
        kinds = frozenset({float, NONE}) if nulls else frozenset({float})
        _check_finite(values, kinds)
        return Values(values, kinds)

    def _binary(self, op: str, left: Values, right: Values, count: int) -> Values:
        if op in _ARITHMETIC:
            return self._arithmetic(op, left, right, count)
        if op in _COMPARE:
            same = (left.kinds <= NUMERIC and right.kinds <= NUMERIC) or (
                left.kinds <= STRINGS and right.kinds <= STRINGS
            )
            if not same:
                raise Unsupported("comparison across types")
            if left.is_const and right.is_const:
                if left.const is None or right.const is None:
                    return Values.constant(None)
                return Values.constant(_COMPARE[op](left.const, right.const))
            nulls = left.has_null or right.has_null
            values = _pairwise(_COMPARE[op], left, right, count)
            return Values(values, frozenset({bool, NONE}) if nulls else frozenset({bool}))
        if op == "||":
            if not (left.kinds <= PRINTABLE and right.kinds <= PRINTABLE):
                raise Unsupported("|| on values SQLite would print differently")
            if left.is_const and right.is_const:
                if left.const is None or right.const is None:
                    return Values.constant(None)
                return Values.constant(f"{left.const}{right.const}")
            values = _pairwise(lambda a, b: f"{a}{b}", left, right, count)
            nulls = left.has_null or right.has_null
            return Values(values, frozenset({str, NONE}) if nulls else frozenset({str}))
        raise Unsupported(op)

    @staticmethod
    def _truths(values: Values, count: int) -> list[bool | None]:
        if not values.kinds <= NUMERIC:
            raise Unsupported("truth of a non-number")
        return list(map(_truth, values.expand(count)))

    @staticmethod
    def _in(node: Node, subject: Values, count: int) -> Values:
        items = node.value
        has_null_item = None in items
        present = [item for item in items if item is not None]
        item_kinds = frozenset(map(type, present)) | {NONE}
        if not (
            (subject.kinds <= NUMERIC and item_kinds <= NUMERIC)
            or (subject.kinds <= STRINGS and item_kinds <= STRINGS)
        ):
            raise Unsupported("IN across types")
        members = set(present)
        miss = None if has_null_item else False
        values = [
            None if v is None else (True if v in members else miss) for v in subject.expand(count)
        ]
        return Values.column(values)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False
