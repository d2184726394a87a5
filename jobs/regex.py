"""Regular expressions from job definitions, matched in linear time (RE2), never backtracking.

A pattern such as `^(a+)+$` on 31 a's and a `!` took Python's `re` minutes and could not be
interrupted (the match holds the GIL in C); RE2 answers in microseconds whatever the pattern
and text. RE2 has no backreferences and no lookaround: such a pattern is refused with a clear
message when the job is defined (docs/pipeline.md).
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

# RE2 refuses to build an automaton above this much memory; a pattern that needs more is
# refused as too large instead of slowing a worker.
MAX_PROGRAM_BYTES = 8 * 1024 * 1024
MAX_PATTERN_CHARS = 10_000


class RegexError(ValueError):
    """The pattern cannot be compiled for linear-time matching; the message says why."""


class LinearPattern(Protocol):
    def search(self, text: str) -> Any: ...


def compile_linear(
    pattern: str, *, ignore_case: bool = False, dot_all: bool = False, multiline: bool = False
) -> LinearPattern:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RegexError(f"is longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False  # the error is the job's, told to its client, not to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_all
    try:
        return re2.compile(f"(?m){pattern}" if multiline else pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(
            f"{reason} (patterns are matched in linear time: no backreferences or lookaround)"
        ) from None


@functools.lru_cache(maxsize=256)
def _cached(pattern: str) -> LinearPattern:
    return compile_linear(pattern)


def sql_regexp(pattern: str | None, value: Any) -> bool | None:
    """SQLite's `value REGEXP pattern` on job connections, in linear time (SQLAlchemy would
    register Python's backtracking `re` there)."""
    if pattern is None or value is None:
        return None
    return _cached(str(pattern)).search(str(value)) is not None
