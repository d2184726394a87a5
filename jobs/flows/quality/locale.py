"""The locale a flow's data-quality nodes work in: a language and a country (`en-US`), checked
against CLDR (babel) and ISO 3166 (pycountry)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import babel
import pycountry

DEFAULT_LOCALE = "en-US"


class UnsupportedLocale(ValueError):
    """A locale that is not a CLDR language with an ISO 3166 country."""


@dataclass(frozen=True)
class Locale:
    tag: str
    language: str  # ISO 639-1, lower case: "en"
    country: str  # ISO 3166-1 alpha-2, upper case: "US"
    day_first: bool  # how CLDR writes a short date there: 31/12/2024 rather than 12/31/2024
    year_first: bool  # 2024/12/31


@functools.cache
def parse_locale(tag: str | None) -> Locale:
    """The locale for a tag such as `en-US` or `fr_FR`; UnsupportedLocale says what is wrong."""
    text = (tag or DEFAULT_LOCALE).strip().replace("_", "-")
    parts = text.split("-")
    if len(parts) != 2 or not all(parts):
        raise UnsupportedLocale(
            f"unsupported locale {tag!r}: give a language and a country, like en-US or fr-FR"
        )
    language, country = parts[0].lower(), parts[1].upper()
    # babel alone would take an unknown country (it falls back to the language's default one).
    if pycountry.countries.get(alpha_2=country) is None:
        raise UnsupportedLocale(f"unsupported locale {tag!r}: {country!r} is no ISO 3166 country")
    try:
        cldr = babel.Locale.parse(f"{language}_{country}")
    except (babel.UnknownLocaleError, ValueError):
        raise UnsupportedLocale(
            f"unsupported locale {tag!r}: CLDR has no locale for {language!r} in {country!r}"
        ) from None
    pattern = cldr.date_formats["short"].pattern
    day, month = pattern.find("d"), pattern.find("M")
    return Locale(
        tag=f"{language}-{country}",
        language=language,
        country=country,
        day_first=0 <= day < month,
        year_first=pattern.lstrip("'").startswith("y"),
    )
