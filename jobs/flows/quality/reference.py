"""The reference data the data-quality nodes use, with versions: what `serverInfo` lists."""

from __future__ import annotations

import functools
import importlib.metadata

import babel.core

# (distribution, the reference data it ships, what it serves); the version is the
# distribution's, except CLDR's, which babel reports itself.
REFERENCE_DATA = (
    ("gender-guesser", "name dictionary nam_dict (40,000 given names, 54 countries)", "gender"),
    ("nameparser", "titles, suffixes and name particles", "name parsing"),
    ("usaddress", "US address CRF model", "address parsing"),
    ("usaddress-scourgify", "USPS Publication 28 abbreviations", "address standardization"),
    ("email-validator", "RFC 5321/5322 syntax, IDNA and special-use domains", "e-mail"),
    ("phonenumbers", "libphonenumber metadata", "phone"),
    ("pycountry", "ISO 3166 countries (iso-codes) and translations", "country"),
    ("cleanco", "legal forms of organizations by country", "organization"),
    ("python-dateutil", "date formats", "date"),
    ("jellyfish", "Soundex, Metaphone and NYSIIS", "match codes"),
    ("rapidfuzz", "token-sort similarity", "clustering"),
)


@functools.cache
def reference_data() -> list[str]:
    """One line per reference data set, as DataFlux lists its reference databases:
    `<data> --- <distribution> <version> --- <use>`."""
    lines = []
    for distribution, data, use in REFERENCE_DATA:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        lines.append(f"{data} --- {distribution} {version} --- {use}")
    cldr = babel.core.get_global("cldr")["version"]
    babel_version = importlib.metadata.version("babel")
    lines.append(f"Unicode CLDR {cldr} --- babel {babel_version} --- locales, date order")
    return lines
