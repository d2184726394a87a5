"""Match codes and clusters: values that probably mean the same thing get the same code.

A match code is the value standardized for its type, folded (accents, case, punctuation), then
each word reduced to a key whose coarseness the sensitivity (50-95, as in DataFlux) sets:

| sensitivity | each word becomes | `Jon Smyth` / `John Smith` |
|---|---|---|
| 95 | itself | `JON SMYTH` / `JOHN SMITH` |
| 90-94 | its NYSIIS key | `JAN SNYT` / `JAN SNAT` |
| 80-89 | its Metaphone key | `JN SM0` / `JN SM0` |
| 65-79 | its Soundex key | `J500 S530` / `J500 S530` |
| 50-64 | its Soundex key's first two characters | `J5 S5` / `J5 S5` |

Numbers are kept whole at every sensitivity (a house number or a ZIP code is not phonetic).
Per type: a name is coded as given, middle initial (at 90 and above), family name (title,
suffix and nickname dropped); an organization without its legal form; an address as USPS
standardizes it; a phone as its E.164 number and an e-mail as its normalized address whatever
the sensitivity (below 90 the `+tag` of the local part is dropped).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import jellyfish
from cleanco import basename
from nameparser import HumanName
from rapidfuzz import fuzz

from jobs.flows.quality import standardizing
from jobs.flows.quality.locale import Locale
from jobs.flows.quality.parsing import MAX_CHARS

MIN_SENSITIVITY, MAX_SENSITIVITY = 50, 95
MATCH_TYPES = ("name", "organization", "address", "phone", "email", "text")
_WORDS = re.compile(r"[^\w]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def _key(sensitivity: int) -> Callable[[str], str]:
    if sensitivity >= 95:
        return lambda word: word
    if sensitivity >= 90:
        return jellyfish.nysiis
    if sensitivity >= 80:
        return jellyfish.metaphone
    if sensitivity >= 65:
        return jellyfish.soundex
    return lambda word: jellyfish.soundex(word)[:2]


def _code(words: list[str], sensitivity: int) -> str | None:
    key = _key(sensitivity)
    codes = []
    for word in words:
        folded = _fold(word)
        for token in _WORDS.split(folded):
            if not token:
                continue
            # The phonetic algorithms read Latin letters only; other scripts are kept as written.
            phonetic = token.isascii() and token.isalpha()
            codes.append(key(token).upper() if phonetic else token)
    return " ".join(codes) or None


def _name_words(value: str, sensitivity: int) -> list[str]:
    parsed = HumanName(value)
    if not (parsed.first or parsed.last):
        return [value]
    middle = parsed.middle[:1] if sensitivity >= 90 and parsed.middle else ""
    return [part for part in (parsed.first, middle, parsed.last) if part]


def match_code(kind: str, value: Any, sensitivity: int, locale: Locale) -> str | None:
    """The match code of `value` read as `kind`; None for null, empty or over-long values."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_CHARS:
        return None
    if kind == "phone":
        return standardizing.phone(text, locale)
    if kind == "email":
        normalized = standardizing.email(text, locale)
        local, at, domain = normalized.rpartition("@")
        if sensitivity < 90 and at:
            local = local.split("+", 1)[0]
        return f"{local}{at}{domain}".upper() if at else normalized.upper()
    if kind == "name":
        words = _name_words(text, sensitivity)
    elif kind == "organization":
        words = [basename(text) or text]
    elif kind == "address":
        words = [standardizing.address(text, locale)]
    else:
        words = [text]
    return _code(words, sensitivity)


class _Groups:
    """Union-find over row positions."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, one: int, other: int) -> None:
        a, b = self.find(one), self.find(other)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def clusters(
    rows: Sequence[Sequence[Any]],
    rules: Sequence[Sequence[tuple[int, int | None]]],
) -> list[int]:
    """A cluster number (1, 2, … in order of first appearance) for each row.

    Two rows are in one cluster when, for some rule, every field of the rule agrees: equal for
    a field without a similarity, rapidfuzz's token-sort ratio at least the similarity
    (0-100) for one with it. A null never agrees. Clusters are transitive: A~B and B~C put A,
    B and C together. Rows are compared only within groups equal on the rule's exact fields,
    so a rule with at least one exact field stays near linear; a rule of similarities only
    compares every pair (about 2 µs a pair with rapidfuzz).
    """
    groups = _Groups(len(rows))
    for rule in rules:
        exact = [position for position, similarity in rule if similarity is None]
        fuzzy = [(position, similarity) for position, similarity in rule if similarity is not None]
        blocks: dict[tuple, list[int]] = {}
        for index, row in enumerate(rows):
            key = tuple(row[position] for position in exact)
            if any(value is None for value in key):
                continue
            if any(row[position] is None for position, _ in fuzzy):
                continue
            blocks.setdefault(key, []).append(index)
        for members in blocks.values():
            if len(members) < 2:
                continue
            if not fuzzy:
                for other in members[1:]:
                    groups.join(members[0], other)
                continue
            for i, first in enumerate(members):
                for j in range(i + 1, len(members)):
                    other = members[j]
                    if groups.find(first) == groups.find(other):
                        continue
                    if all(
                        fuzz.token_sort_ratio(
                            str(rows[first][position]),
                            str(rows[other][position]),
                            score_cutoff=similarity,
                        )
                        for position, similarity in fuzzy
                    ):
                        groups.join(first, other)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(groups.find(index), len(numbers) + 1) for index in range(len(rows))]
