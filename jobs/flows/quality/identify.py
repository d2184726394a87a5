"""Identification analysis: what kind of value a string is, with a confidence (0-100).

Each library is asked in turn, most specific first; the first that recognises the value
decides (see docs/flows.md for the confidences and why):

1. e-mail (email-validator): a valid address 99; something with an `@` it refuses 60.
2. phone (phonenumbers): only digits and phone punctuation with 7 to 15 digits; a valid
   number 95, a possible one 70.
3. address (usaddress): a street address with a number and a street name 90 (80 without a
   street type, city or ZIP); a PO box 90.
4. organization (cleanco): ends in a legal form (`Inc`, `GmbH`, `Ltd`…) 90.
5. person (nameparser + gender-guesser): two to five words of letters; given name known to
   gender-guesser 85, otherwise a title (`Dr.`, `Mrs.`) 75, otherwise 50.
6. unknown 0.
"""

from __future__ import annotations

import re
from typing import Any

import email_validator
import phonenumbers
from nameparser import HumanName

from jobs.flows.quality import gender
from jobs.flows.quality.locale import Locale
from jobs.flows.quality.parsing import MAX_CHARS, read_phone, tag_address
from jobs.flows.quality.standardizing import organization_type

KINDS = ("person", "organization", "address", "email", "phone", "unknown")
_PHONE_TEXT = re.compile(r"^[\d\s()+\-./]+(?:\s*(?:x|ext\.?)\s*\d+)?$", re.IGNORECASE)
# Letters, with apostrophes (straight or typographic), hyphens and dots inside.
_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d_'\u2019.\-]*(?:['\u2019.\-][^\W\d_]*)*\.?$")


def _email(text: str) -> int:
    if "@" not in text:
        return 0
    try:
        email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return 60
    return 99


def _phone(text: str, locale: Locale) -> int:
    digits = sum(char.isdigit() for char in text)
    if not (7 <= digits <= 15 and _PHONE_TEXT.match(text)):
        return 0
    number = read_phone(text, locale.country)
    if number is None:
        return 0
    if phonenumbers.is_valid_number(number):
        return 95
    return 70 if phonenumbers.is_possible_number(number) else 0


def _address(text: str) -> int:
    if not any(char.isdigit() for char in text):
        return 0
    tagged = tag_address(text)
    if tagged is None:
        return 0
    labelled, kind = tagged
    if kind == "PO Box" and "USPSBoxID" in labelled:
        return 90
    if kind != "Street Address" or not {"AddressNumber", "StreetName"} <= labelled.keys():
        return 0
    number = labelled["AddressNumber"]
    if not any(char.isdigit() for char in number):
        return 0
    confirmed = {"StreetNamePostType", "PlaceName", "ZipCode"} & labelled.keys()
    return 90 if confirmed else 80


def _person(text: str, locale: Locale) -> int:
    words = text.replace(",", " ").split()
    if not 2 <= len(words) <= 5 or not all(_NAME_WORD.match(word) for word in words):
        return 0
    parsed = HumanName(text)
    if not (parsed.first and parsed.last):
        return 0
    if gender.guess(parsed.first, locale.country) != "U":
        return 85
    return 75 if parsed.title else 50


def identify(value: Any, locale: Locale) -> tuple[str | None, int | None]:
    """The kind of `value` (one of KINDS) and the confidence; null gives (None, None)."""
    if value is None:
        return None, None
    text = str(value).strip()
    if not text or len(text) > MAX_CHARS:
        return "unknown", 0
    for kind, score in (
        ("email", lambda: _email(text)),
        ("phone", lambda: _phone(text, locale)),
        ("address", lambda: _address(text)),
        ("organization", lambda: 90 if organization_type(text) else 0),
        ("person", lambda: _person(text, locale)),
    ):
        confidence = score()
        if confidence:
            return kind, confidence
    return "unknown", 0
