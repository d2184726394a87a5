"""Enzo expressions ("Enzo Expression (Enzo Functions)"): `#function(...)` calls, rewritten to
functions registered on the shared SQL expression language, so they compose with SQL."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from jobs.expressions import register_function
from jobs.schedule.quartz import time_zone

# Enzo name (lowercase) → (SQL name, number of arguments or -1, function, deterministic).
FUNCTIONS: dict[str, tuple[str, int, Callable[..., Any], bool]] = {}

_DATE_PARTS = {
    "year": "years", "yy": "years", "yyyy": "years",
    "quarter": "quarters", "qq": "quarters", "q": "quarters",
    "month": "months", "mm": "months", "m": "months",
    "week": "weeks", "wk": "weeks", "ww": "weeks",
    "day": "days", "dd": "days", "d": "days", "dayofyear": "days", "dy": "days", "y": "days",
    "hour": "hours", "hh": "hours",
    "minute": "minutes", "mi": "minutes", "n": "minutes",
    "second": "seconds", "ss": "seconds", "s": "seconds",
    "millisecond": "milliseconds", "ms": "milliseconds",
}  # fmt: skip

# .NET custom date format tokens → strftime, longest first so `yyyy` wins over `yy`.
_NET_FORMAT = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("M", "%-m"),
    ("dddd", "%A"), ("ddd", "%a"), ("dd", "%d"), ("d", "%-d"), ("HH", "%H"), ("H", "%-H"),
    ("hh", "%I"), ("h", "%-I"), ("mm", "%M"), ("m", "%-M"), ("ss", "%S"), ("s", "%-S"),
    ("tt", "%p"),
]  # fmt: skip
_NET_TOKEN = re.compile(
    r"f{1,7}|zzz|" + "|".join(re.escape(token) for token, _ in _NET_FORMAT) + r"|'[^']*'|\\.|."
)
_NET_MAP = dict(_NET_FORMAT)


def _text(moment: dt.datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


def _parse(value: Any) -> dt.datetime:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return dt.datetime.fromisoformat(text)


def utcnow() -> str:
    return _text(dt.datetime.now(dt.UTC).replace(tzinfo=None))


def now() -> str:
    return _text(dt.datetime.now(time_zone()).replace(tzinfo=None))


def dateadd(part: Any, number: Any, value: Any) -> str | None:
    """SQL Server's DATEADD(datepart, number, date), which Enzo's #dateadd follows."""
    if value is None or number is None:
        return None
    unit = _DATE_PARTS.get(str(part).strip().lower())
    if unit is None:
        raise ValueError(f"#dateadd: unknown date part '{part}'")
    moment = _parse(value)
    amount = int(float(number))
    if unit in ("years", "quarters", "months"):
        months = amount * {"years": 12, "quarters": 3, "months": 1}[unit]
        total = moment.year * 12 + moment.month - 1 + months
        year, month = divmod(total, 12)
        month += 1
        last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
        return _text(moment.replace(year=year, month=month, day=min(moment.day, last)))
    return _text(moment + dt.timedelta(**{unit: amount}))


def format_date(value: Any, pattern: Any = "yyyy-MM-dd HH:mm:ss") -> str | None:
    """Format a date with a .NET custom format string ('yyyy-MM-dd HH:mm:ss')."""
    if value is None:
        return None
    moment = _parse(value)
    out: list[str] = []
    for token in _NET_TOKEN.findall(str(pattern)):
        out.append(_format_token(moment, token))
    return "".join(out)


def _format_token(moment: dt.datetime, token: str) -> str:
    if token in _NET_MAP:
        code = _NET_MAP[token]
        if code.startswith("%-"):
            return str(int(moment.strftime("%" + code[2:])))
        return moment.strftime(code)
    if token.startswith("f"):
        # Fractions of a second: .NET's f…fffffff are the first digits of 7.
        return f"{moment.microsecond * 10:07d}"[: len(token)]
    if token == "zzz":
        offset = moment.utcoffset() or dt.timedelta(0)
        sign = "-" if offset < dt.timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1]
    if len(token) == 2 and token[0] == "\\":
        return token[1]
    return token


def newguid() -> str:
    return str(uuid.uuid4())


def _add(name: str, nargs: int, fn: Callable[..., Any], deterministic: bool = True) -> None:
    FUNCTIONS[name] = (f"enzo_{name}", nargs, fn, deterministic)


_add("utcnow", 0, utcnow, deterministic=False)
_add("now", 0, now, deterministic=False)
_add("getdate", 0, now, deterministic=False)
_add("getutcdate", 0, utcnow, deterministic=False)
_add("dateadd", 3, dateadd)
_add("formatdate", -1, format_date)
_add("newguid", 0, newguid, deterministic=False)

_registered = False


def register_all() -> None:
    """Register the Enzo functions on the expression language (idempotent)."""
    global _registered
    if _registered:
        return
    for sql_name, nargs, fn, deterministic in FUNCTIONS.values():
        register_function(sql_name, nargs, fn, deterministic=deterministic)
    _registered = True


_CALL_OR_STRING = re.compile(r"'(?:[^']|'')*'|#([A-Za-z_]\w*)\s*\(")


def to_sql(expression: str) -> str:
    """Rewrite `#name(` calls (outside string literals) to their registered SQL names.

    Raises ValueError naming an unknown Enzo function.
    """
    register_all()

    def rewrite(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        entry = FUNCTIONS.get(name.lower())
        if entry is None:
            known = ", ".join(f"#{n}()" for n in sorted(FUNCTIONS))
            raise ValueError(f"unknown Enzo function #{name}() (known: {known})")
        return f"{entry[0]}("

    return _CALL_OR_STRING.sub(rewrite, expression)
