"""Real-looking test data for the data-quality nodes, made from a fixed seed: contacts with
planted duplicates, full names and US addresses built from known parts (so each expected part
is known), and phone numbers from phonenumbers' own example numbers of every region."""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers

GIVEN = [
    "John", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Margaret", "Mark", "Sandra", "Steven",
    "Ashley", "Paul", "Emily", "Andrew", "Donna", "Kenneth", "Michelle", "George", "Carol",
    "Brian", "Amanda", "Edward", "Melissa", "Catherine", "Philip", "Eric", "Carl", "Jeffrey",
]  # fmt: skip
FAMILY = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Meyer",
]  # fmt: skip
# Spellings a person's name is often found under: same sound, other letters.
SOUNDS_ALIKE = {
    "John": "Jon", "Steven": "Stephen", "Catherine": "Kathryn", "Philip": "Phillip",
    "Eric": "Erik", "Carl": "Karl", "Jeffrey": "Geoffrey", "Sarah": "Sara",
    "Smith": "Smyth", "Thompson": "Thomson", "Meyer": "Meier", "Clark": "Clarke",
    "Brown": "Browne", "Johnson": "Jonson", "Lee": "Leigh", "Allen": "Allan",
}  # fmt: skip
STREETS = [
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
    "Sunset", "Lincoln", "Jackson", "Highland", "Madison", "Franklin", "Ridge", "Walnut",
]  # fmt: skip
# Written out in full, as people type them; USPS abbreviates each.
STREET_TYPES = ["Street", "Avenue", "Boulevard", "Drive", "Lane", "Road", "Court", "Place"]
UNITS = ["Apartment", "Suite", "Unit"]
# How people commonly shorten them (USPS's own abbreviations, in mixed case with a dot).
ABBREVIATED = {
    "Street": "St.", "Avenue": "Ave", "Boulevard": "Blvd.", "Drive": "Dr", "Lane": "Ln",
    "Road": "Rd.", "Court": "Ct", "Place": "Pl",
}  # fmt: skip
CITIES = [
    ("Springfield", "IL", "62704"), ("Denver", "CO", "80202"), ("Austin", "TX", "78701"),
    ("Portland", "OR", "97205"), ("Madison", "WI", "53703"), ("Raleigh", "NC", "27601"),
    ("Boise", "ID", "83702"), ("Columbus", "OH", "43215"), ("Albany", "NY", "12207"),
    ("Phoenix", "AZ", "85004"), ("Richmond", "VA", "23219"), ("Salem", "MA", "01970"),
]  # fmt: skip
AREA_CODES = ["212", "312", "415", "617", "919", "303", "512", "503", "608", "602"]
DOMAINS = ["example.com", "mail.example.org", "example.net", "corp.example.com"]


@dataclass
class Contact:
    person: int  # who it really is: rows of one person are duplicates
    name: str
    email: str | None
    phone: str | None
    address: str | None


def _phone(rng: random.Random) -> tuple[str, str]:
    """A US number written two ways a person might type it."""
    area, exchange, line = rng.choice(AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
    return f"({area}) {exchange}-{line:04d}", f"{area}.{exchange}.{line:04d}"


def _address(rng: random.Random) -> tuple[str, str]:
    """A US address in full, and as a person might abbreviate it."""
    number, street = rng.randint(1, 9999), rng.choice(STREETS)
    kind = rng.choice(STREET_TYPES)
    city, state, zip_code = rng.choice(CITIES)
    unit = f" {rng.choice(UNITS)} {rng.randint(1, 40)}" if rng.random() < 0.3 else ""
    full = f"{number} {street} {kind}{unit}, {city}, {state} {zip_code}"
    short_unit = unit.replace("Apartment", "Apt").replace("Suite", "Ste")
    short = f"{number} {street} {ABBREVIATED[kind]}{short_unit}, {city}, {state} {zip_code}"
    return full, short


def _name_variant(rng: random.Random, given: str, family: str) -> str:
    ways = [
        lambda: f"{given.upper()}  {family.upper()}",
        lambda: f"{family}, {given}",
        lambda: f"{SOUNDS_ALIKE.get(given, given)} {family}",
        lambda: f"{given} {SOUNDS_ALIKE.get(family, family)}",
        lambda: f"{given} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {family}",
        lambda: f"{given.lower()} {family.lower()}",
    ]
    return rng.choice(ways)()


def contacts(count: int = 200, duplicates: int = 50, seed: int = 18) -> list[Contact]:
    """`count` contacts of which `duplicates` are another row's person written differently:
    the name spelled another way (case, order, sound-alike spelling, a middle initial) and at
    least one of phone, e-mail, address the same up to formatting; the others changed."""
    rng = random.Random(seed)
    people = rng.sample([(g, f) for g in GIVEN for f in FAMILY], count - duplicates)
    rows: list[Contact] = []
    originals = []
    for person, (given, family) in enumerate(people):
        phone, phone_other = _phone(rng)
        address, address_other = _address(rng)
        email = f"{given}.{family}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}".lower()
        rows.append(Contact(person, f"{given} {family}", email, phone, address))
        originals.append((given, family, email, phone_other, address_other))
    for person in rng.sample(range(len(people)), duplicates):
        given, family, email, phone_other, address_other = originals[person]
        kept = rng.choice(["phone", "email", "address", "phone+email"])
        local, _, domain = email.partition("@")
        rows.append(
            Contact(
                person,
                _name_variant(rng, given, family),
                f"{local}@{domain.upper()}" if "email" in kept else None,
                phone_other if "phone" in kept else _phone(rng)[0],
                address_other if kept == "address" else None,
            )
        )
    rng.shuffle(rows)
    return rows


def pair_scores(truth: list[int], clusters: list[int]) -> tuple[float, float]:
    """Precision and recall of `clusters` over pairs of rows, against the true persons."""
    true_pairs, found_pairs = set(), set()
    for i in range(len(truth)):
        for j in range(i + 1, len(truth)):
            if truth[i] == truth[j]:
                true_pairs.add((i, j))
            if clusters[i] == clusters[j]:
                found_pairs.add((i, j))
    right = len(true_pairs & found_pairs)
    precision = right / len(found_pairs) if found_pairs else 1.0
    recall = right / len(true_pairs) if true_pairs else 1.0
    return precision, recall


TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]
SUFFIXES = ["Jr.", "Sr.", "III", "PhD"]


def full_names(count: int = 240, seed: int = 7) -> list[tuple[str, dict[str, str | None]]]:
    """Full names with their parts: title, given, middle, family, suffix (some left out)."""
    rng = random.Random(seed)
    names = []
    for _ in range(count):
        parts: dict[str, str | None] = {
            "prefix": rng.choice(TITLES) if rng.random() < 0.4 else None,
            "given": rng.choice(GIVEN),
            "middle": rng.choice(GIVEN) if rng.random() < 0.3 else None,
            "family": rng.choice(FAMILY),
            "suffix": rng.choice(SUFFIXES) if rng.random() < 0.2 else None,
        }
        text = " ".join(value for value in parts.values() if value)
        names.append((text, parts))
    return names


def us_addresses(count: int = 240, seed: int = 11) -> list[tuple[str, dict[str, str | None]]]:
    """US addresses with their parts, written out in full, some with a unit."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        city, state, zip_code = rng.choice(CITIES)
        parts: dict[str, str | None] = {
            "number": str(rng.randint(1, 99999)),
            "street": rng.choice(["", "North ", "South ", "East ", "West "]) + rng.choice(STREETS),
            "type": rng.choice(STREET_TYPES),
            "unit": f"{rng.choice(UNITS)} {rng.randint(1, 400)}" if rng.random() < 0.3 else None,
            "city": city,
            "state": state,
            "zip": zip_code,
        }
        unit = f" {parts['unit']}" if parts["unit"] else ""
        text = (
            f"{parts['number']} {parts['street']} {parts['type']}{unit}, "
            f"{parts['city']}, {parts['state']} {parts['zip']}"
        )
        found.append((text, parts))
    return found


def example_phones() -> list[tuple[str, str, str, str]]:
    """(region, number as written there, as written internationally, E.164) for every region
    phonenumbers has an example fixed-line or mobile number for."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number(region) or phonenumbers.example_number_for_type(
            region, phonenumbers.PhoneNumberType.MOBILE
        )
        if number is None:
            continue
        fmt = phonenumbers.PhoneNumberFormat
        found.append(
            (
                region,
                phonenumbers.format_number(number, fmt.NATIONAL),
                phonenumbers.format_number(number, fmt.INTERNATIONAL),
                phonenumbers.format_number(number, fmt.E164),
            )
        )
    return found
