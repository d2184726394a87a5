"""Gender analysis from a given name or a full name, on gender-guesser's name dictionary
(about 40,000 names with their use in 54 countries or groups of countries)."""

from __future__ import annotations

import functools

import gender_guesser.detector
from nameparser import HumanName

# gender-guesser names its countries in its own words; the ISO 3166 codes they stand for.
# (The library's columns, listed in its README; a code it has no column for gets no hint.)
_COUNTRY_KEYS = {
    "GB": "great_britain", "IE": "ireland", "US": "usa", "IT": "italy", "MT": "malta",
    "PT": "portugal", "ES": "spain", "FR": "france", "BE": "belgium", "LU": "luxembourg",
    "NL": "the_netherlands", "DE": "germany", "AT": "austria", "CH": "swiss", "IS": "iceland",
    "DK": "denmark", "NO": "norway", "SE": "sweden", "FI": "finland", "EE": "estonia",
    "LV": "latvia", "LT": "lithuania", "PL": "poland", "CZ": "czech_republic",
    "SK": "slovakia", "HU": "hungary", "RO": "romania", "BG": "bulgaria", "BA": "bosniaand",
    "HR": "croatia", "XK": "kosovo", "MK": "macedonia", "ME": "montenegro", "RS": "serbia",
    "SI": "slovenia", "AL": "albania", "GR": "greece", "RU": "russia", "BY": "belarus",
    "MD": "moldova", "UA": "ukraine", "AM": "armenia", "AZ": "azerbaijan", "GE": "georgia",
    "KZ": "the_stans", "KG": "the_stans", "TJ": "the_stans", "TM": "the_stans",
    "UZ": "the_stans", "TR": "turkey", "SA": "arabia", "AE": "arabia", "QA": "arabia",
    "KW": "arabia", "BH": "arabia", "OM": "arabia", "YE": "arabia", "JO": "arabia",
    "IL": "israel", "CN": "china", "IN": "india", "JP": "japan", "KR": "korea", "VN": "vietnam",
}  # fmt: skip

# The ambiguity rule: what each of the library's answers becomes.
_CODES = {"male": "M", "mostly_male": "M", "female": "F", "mostly_female": "F"}
_STRICT_CODES = {"male": "M", "female": "F"}


@functools.cache
def _detector() -> gender_guesser.detector.Detector:
    # Reading the dictionary takes about a second: once per process.
    return gender_guesser.detector.Detector(case_sensitive=False)


def warm_up() -> None:
    """Load the name dictionary now rather than in the first run that needs it."""
    _detector()


def country_key(country: str | None) -> str | None:
    """gender-guesser's column for an ISO 3166 alpha-2 code, or None."""
    return _COUNTRY_KEYS.get((country or "").upper())


def _known_in(name: str, key: str) -> bool:
    """Whether the dictionary has a frequency for `name` in that country's column (without
    one, gender-guesser answers "andy" for the country, which would hide the name's
    answer elsewhere)."""
    column = gender_guesser.detector.Detector.COUNTRIES.index(key)
    entries = _detector().names.get(name.lower(), {})
    return any(len(values) > column and values[column] != " " for values in entries.values())


def given_name(value: str, *, full: bool) -> str:
    """The given name to look up: the first word, or nameparser's first name of a full name."""
    if full:
        return HumanName(value).first
    words = value.split()
    return words[0] if words else ""


def guess(name: str, country: str | None = None, *, strict: bool = False) -> str:
    """`M`, `F` or `U` for a given name.

    With a country, the name's use there decides; a name the dictionary does not know there
    is looked up over all countries. `mostly_male`/`mostly_female` count as M/F unless
    `strict`; `andy` (as often either) and unknown names are `U`. A double name
    (`Anne-Marie`) unknown as a whole is decided by its first part.
    """
    detector = _detector()
    key = country_key(country)
    candidates = [name]
    if "-" in name:
        candidates.append(name.split("-", 1)[0])
    for candidate in candidates:
        if not candidate:
            continue
        answer = detector.get_gender(candidate, key) if key and _known_in(candidate, key) else None
        if answer is None:
            answer = detector.get_gender(candidate)
        if answer != "unknown":
            return (_STRICT_CODES if strict else _CODES).get(answer, "U")
    return "U"
