"""Standardization per data type: the value as written by the reference data's rules.

- name: capitalized, single spaces, nickname dropped (nameparser);
- organization: base name, legal form in its shortest spelling, `Incorporated` → `INC` (cleanco);
- address: USPS Publication 28, `Street` → `ST`, `Apartment` → `APT` (usaddress-scourgify);
- phone: E.164 (phonenumbers);
- email: domain in lower case (IDNA), local part kept (email-validator);
- date: ISO 8601, day/month order from the locale (python-dateutil, CLDR through babel);
- country: ISO 3166-1 code from a name, official name or code, also in the locale's language
  (pycountry).

A value the type's library cannot read is returned unchanged: standardizing never loses data.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import email_validator
import phonenumbers
import pycountry
from cleanco import basename, matches, typesources
from cleanco.termdata import terms_by_type
from dateutil import parser as dateparser
from nameparser import HumanName
from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError

from jobs.flows.quality.locale import Locale
from jobs.flows.quality.parsing import MAX_CHARS, read_phone

_SPACES = re.compile(r"\s+")


def name(value: str, locale: Locale) -> str:
    """`  dr. JOHN "Johnny"  smith jr ` → `Dr. John Smith Jr.`"""
    parsed = HumanName(value)
    parsed.capitalize(force=True)
    parts = (parsed.title, parsed.first, parsed.middle, parsed.last, parsed.suffix)
    text = " ".join(part for part in parts if part)
    return text or _SPACES.sub(" ", value).strip()


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _abbreviates(short: str, long: str) -> bool:
    """Whether `short` is an abbreviation of `long`: same first letter, its letters in order."""
    letters = iter(long)
    return short[:1] == long[:1] and all(char in letters for char in short)


@functools.cache
def _legal_forms() -> dict[str, str]:
    """Each legal-form term of cleanco → its shortest spelling of the same form: the shortest
    term of the same type that abbreviates it (`incorporated` → `inc`, `limited` → `ltd`)."""
    shortest: dict[str, str] = {}
    for terms in terms_by_type.values():
        cleaned = sorted({term.replace(".", "").strip() for term in terms}, key=len)
        for term in cleaned:
            if " " in term:
                continue
            short = next((t for t in cleaned if " " not in t and _abbreviates(t, term)), term)
            if len(short) < len(shortest.get(term, term + " ")):
                shortest[term] = short
    return shortest


def organization(value: str, locale: Locale) -> str:
    """`ACME,  Incorporated` → `ACME INC`; `Siemens A.G.` → `Siemens AG`."""
    text = _SPACES.sub(" ", value).strip()
    base = basename(text)
    if not base or base == text:
        return text
    legal = text[len(base) :].strip(" ,.")
    spelled = _fold(legal).replace(".", "").replace(",", " ")
    words = [_legal_forms().get(word, word) for word in spelled.split()]
    # Legal forms are written in capitals (INC, LTD, GMBH, PLC), as registries list them.
    return f"{base} {' '.join(words).upper()}".strip()


@functools.cache
def _type_sources() -> list:
    return typesources()


def organization_type(value: str) -> str | None:
    """cleanco's legal type of an organization name (`Corporation`, `Limited`…), or None."""
    kinds = matches(value, _type_sources())
    return kinds[0] if kinds else None


def address(value: str, locale: Locale) -> str:
    """`123 North Main Street Apartment 4, Springfield, Illinois 62704` →
    `123 N MAIN ST APT 4, SPRINGFIELD, IL 62704` (USPS Publication 28)."""
    try:
        parts = normalize_address_record(value, strict=False)
    except AddressNormalizationError:
        return value
    line = " ".join(p for p in (parts["address_line_1"], parts["address_line_2"]) if p)
    place = " ".join(p for p in (parts["state"], parts["postal_code"]) if p)
    return ", ".join(p for p in (line, parts["city"], place) if p)


def phone(value: str, locale: Locale) -> str:
    """`(650) 253-0000` in en-US → `+16502530000`; a number it cannot read stays."""
    number = read_phone(value, locale.country)
    if number is None or not phonenumbers.is_possible_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(value: str, locale: Locale) -> str:
    """`John.Doe@EXAMPLE.COM` → `John.Doe@example.com` (the local part may be case-sensitive)."""
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError:
        return value


_DATE_CHARS = re.compile(r"\d")
_TIME = re.compile(r"\d:\d\d|T\d\d")


def date(value: str, locale: Locale) -> str:
    """`12/31/2024` (en-US) or `31/12/2024` (en-GB) → `2024-12-31`; `March 5, 2024` →
    `2024-03-05`; with a time, the ISO date and time. A bare number is not taken for a date."""
    text = value.strip()
    if len(text) < 6 or not _DATE_CHARS.search(text):
        return value
    try:
        # ISO 8601 first: dateutil's day-first reading would turn 2024-03-05 into May 3rd.
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = dateparser.parse(text, dayfirst=locale.day_first, yearfirst=locale.year_first)
        except (ValueError, OverflowError):
            return value
    if _TIME.search(text):
        return parsed.isoformat()
    return dt.date(parsed.year, parsed.month, parsed.day).isoformat()


@functools.cache
def _country_names(language: str) -> dict[str, str]:
    """Country names in `language` (pycountry's iso-codes translations) → alpha-2 codes."""
    try:
        catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
    except OSError:
        return {}
    names: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            english = getattr(country, attribute, None)
            if english:
                names[_fold(catalog.gettext(english))] = country.alpha_2
    return names


def country(value: str, locale: Locale) -> str:
    """`Germany`, `DEU`, `Federal Republic of Germany` or (de-DE) `Deutschland` → `DE`."""
    text = _SPACES.sub(" ", value).strip()
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        pass
    return _country_names(locale.language).get(_fold(text), value)


def country_code(value: Any, locale: Locale) -> str | None:
    """The ISO code for a country value, or None when it names no country."""
    if value is None:
        return None
    code = country(str(value), locale)
    return code if pycountry.countries.get(alpha_2=code) is not None else None


def phone_region(value: Any, locale: Locale) -> str | None:
    """The phonenumbers region for a country value: its own region codes first (it has some
    ISO 3166 does not, such as AC for Ascension Island), then any country name or code."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in phonenumbers.SUPPORTED_REGIONS:
        return text
    return country_code(value, locale)


STANDARDIZERS: dict[str, Callable[[str, Locale], str]] = {
    "name": name,
    "organization": organization,
    "address": address,
    "phone": phone,
    "email": email,
    "date": date,
    "country": country,
}


def standardize(kind: str, value: Any, locale: Locale) -> Any:
    """The standard form of `value` as a `kind`; null stays null, over-long values stay."""
    if value is None:
        return None
    text = str(value)
    if not text.strip() or len(text) > MAX_CHARS:
        return text.strip() if len(text) <= MAX_CHARS else text
    return STANDARDIZERS[kind](text, locale)
