"""Parsing a value into its parts: a person's name (nameparser), a US address (usaddress), an
e-mail address (email-validator, no network) and a phone number (phonenumbers).

Each parser gives a dict of every part it knows (None when absent). Null gives every part
None; values longer than MAX_CHARS are not parsed (all parts None, `valid` False), which keeps
a pathological value from costing more than a normal one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import email_validator
import phonenumbers
import usaddress
from nameparser import HumanName

MAX_CHARS = 1024

NAME_PARTS = ("prefix", "given", "middle", "family", "suffix", "nickname")
ADDRESS_PARTS = ("number", "street", "type", "unit", "city", "state", "zip")
EMAIL_PARTS = ("local", "domain", "normalized", "valid")
PHONE_PARTS = ("country", "countryCode", "national", "e164", "valid")

# The flow type of each part that is not a string.
PART_TYPES = {"valid": "boolean", "countryCode": "integer"}


def _empty(parts: tuple[str, ...]) -> dict[str, Any]:
    return dict.fromkeys(parts)


def _usable(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text if text and len(text) <= MAX_CHARS else None


def parse_name(value: Any) -> dict[str, Any]:
    """`Dr. Juan "Johnny" de la Vega III` → prefix Dr., given Juan, family de la Vega, …"""
    text = _usable(value)
    if text is None:
        return _empty(NAME_PARTS)
    name = HumanName(text)
    parts = {
        "prefix": name.title,
        "given": name.first,
        "middle": name.middle,
        "family": name.last,
        "suffix": name.suffix,
        "nickname": name.nickname,
    }
    return {part: (found or None) for part, found in parts.items()}


# usaddress's labels that make up each part, in the order they are written.
_ADDRESS_LABELS = {
    "number": ("AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix"),
    "street": (
        "StreetNamePreModifier",
        "StreetNamePreDirectional",
        "StreetNamePreType",
        "StreetName",
        "StreetNamePostDirectional",
        "StreetNamePostModifier",
    ),
    "type": ("StreetNamePostType",),
    "unit": ("OccupancyType", "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier"),
    "city": ("PlaceName",),
    "state": ("StateName",),
    "zip": ("ZipCode",),
}
_PO_BOX = ("USPSBoxType", "USPSBoxID")


def tag_address(text: str) -> tuple[dict[str, str], str] | None:
    """usaddress's labelled components and address type, or None when it finds two readings."""
    try:
        labelled, kind = usaddress.tag(text)
    except usaddress.RepeatedLabelError:
        return None
    return dict(labelled), kind


def parse_address(value: Any) -> dict[str, Any]:
    """`123 N Main St Apt 4, Springfield, IL 62704` → number 123, street N Main, type St, …

    A PO box goes to `street` (`PO Box 12`), or to `unit` after a street. An address
    usaddress reads two ways (a label repeated) gives no parts.
    """
    text = _usable(value)
    tagged = tag_address(text) if text is not None else None
    if tagged is None:
        return _empty(ADDRESS_PARTS)
    labelled, _ = tagged
    parts: dict[str, Any] = {}
    for part, labels in _ADDRESS_LABELS.items():
        words = [labelled[label] for label in labels if label in labelled]
        parts[part] = " ".join(words).strip(" ,") or None
    box = " ".join(labelled[label] for label in _PO_BOX if label in labelled) or None
    if parts["street"] is None:
        parts["street"] = box
    elif parts["unit"] is None:
        # After a street, the model sometimes labels "Apartment 12" as a box: it is the unit.
        parts["unit"] = box
    return parts


def parse_email(value: Any) -> dict[str, Any]:
    """Local part, domain (lower case), normalized address and validity; no DNS lookup.

    An invalid address still gives the local part and domain around its last `@`.
    """
    text = _usable(value)
    if text is None:
        return {**_empty(EMAIL_PARTS), "valid": None if value is None else False}
    try:
        checked = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError:
        local, at, domain = text.rpartition("@")
        return {
            "local": local or None,
            "domain": domain.lower() if at and domain else None,
            "normalized": None,
            "valid": False,
        }
    return {
        "local": checked.local_part,
        "domain": checked.domain,
        "normalized": checked.normalized,
        "valid": True,
    }


def read_phone(text: str, country: str | None) -> phonenumbers.PhoneNumber | None:
    """The number phonenumbers reads, with `country` for numbers written without +code."""
    try:
        return phonenumbers.parse(text, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None


def parse_phone(value: Any, country: str | None = None) -> dict[str, Any]:
    """Country (ISO code), calling code, national number, E.164 form and validity.

    A number that phonenumbers reads but finds invalid for its country keeps its parts with
    `valid` False; one it cannot read at all gives no parts.
    """
    text = _usable(value)
    number = read_phone(text, country) if text is not None else None
    if number is None:
        return {**_empty(PHONE_PARTS), "valid": None if value is None else False}
    return {
        "country": phonenumbers.region_code_for_number(number),
        "countryCode": number.country_code,
        "national": str(number.national_number),
        "e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "valid": phonenumbers.is_valid_number(number),
    }


PARSERS: dict[str, tuple[tuple[str, ...], Callable[..., dict[str, Any]]]] = {
    "name": (NAME_PARTS, parse_name),
    "address": (ADDRESS_PARTS, parse_address),
    "email": (EMAIL_PARTS, parse_email),
    "phone": (PHONE_PARTS, parse_phone),
}
