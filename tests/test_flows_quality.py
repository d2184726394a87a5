"""The data-quality nodes on real-looking data: answers taken from the libraries' documented
behaviour (gender-guesser's README, phonenumbers' example numbers, USPS abbreviations), and the
edge cases: null, empty, non-Latin scripts, very long values, bad attributes and locales."""

from __future__ import annotations

import random
from typing import Any

import gender_guesser.detector
import pytest

from jobs.flows.errors import FlowError
from jobs.flows.language.compiler import compile_flow
from jobs.flows.language.nodes import RunState
from jobs.flows.quality import matching
from jobs.flows.quality.locale import parse_locale
from tests.flows_quality_data import example_phones, full_names, us_addresses

LONG = "x" * 5000


def run(
    nodes: str, columns: list[str], rows: list[list[Any]], locale: str | None = None
) -> list[dict[str, Any]]:
    """Run `nodes` over a table of string columns; every field of every row at the end."""
    fields = "".join(f'<field name="{name}"/>' for name in columns)
    attribute = f' locale="{locale}"' if locale else ""
    xml = (
        f"<flow{attribute}><inputs><table>{fields}</table></inputs>"
        f"<nodes><externalData/>{nodes}</nodes></flow>"
    )
    flow = compile_flow("test.ddf", xml)
    metadata = [{"name": name, "type": "string"} for name in columns]
    macros, tables = flow.prepare_inputs({"dataTable": {"metadata": metadata, "data": rows}})
    stream = flow.run_stream(RunState(macros, tables))
    return [dict(zip(stream.names, row, strict=True)) for row in stream.rows]


def column(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows]


# -- gender ------------------------------------------------------------------------------------


def test_gender_follows_the_documented_examples_and_ambiguity_rule() -> None:
    # given gender-guesser's README: Bob male, Sally female, Pauley andy, Jamie mostly_female
    # (mostly_male in Great Britain)
    names = [["Bob"], ["Sally"], ["Pauley"], ["Jamie"]]
    # when
    usa = run('<gender field="Name"/>', ["Name"], names)
    britain = run('<gender field="Name"/>', ["Name"], names, locale="en-GB")
    strict = run('<gender field="Name" strict="true"/>', ["Name"], names)
    # then
    assert column(usa, "Gender") == ["M", "F", "U", "F"]
    assert column(britain, "Gender") == ["M", "F", "U", "M"]
    assert column(strict, "Gender") == ["M", "F", "U", "U"]


def test_gender_of_hundreds_of_names_from_several_countries() -> None:
    # given 400 names of gender-guesser's dictionary, each with a country it is used in
    detector = gender_guesser.detector.Detector(case_sensitive=False)
    codes = {"GB": "great_britain", "FR": "france", "DE": "germany", "IT": "italy", "US": "usa"}
    rng = random.Random(18)
    # (one-word names: the node reads the first word of a given name)
    sample = rng.sample(sorted(name for name in detector.names if " " not in name), 400)
    rows = [[name, rng.choice(list(codes))] for name in sample]
    rule = {"male": "M", "mostly_male": "M", "female": "F", "mostly_female": "F"}

    def expected(name: str, country: str) -> str:
        column_at = detector.COUNTRIES.index(codes[country])
        used_there = any(v[column_at] != " " for v in detector.names[name].values())
        answer = detector.get_gender(name, codes[country] if used_there else None)
        return rule.get(answer, "U")

    # when
    found = run('<gender field="Name" countryField="Country"/>', ["Name", "Country"], rows)
    # then
    assert column(found, "Gender") == [expected(name, country) for name, country in rows]
    assert {"M", "F", "U"} <= set(column(found, "Gender"))


def test_gender_from_full_names_and_edge_cases() -> None:
    rows = [
        ["Dr. Maria Lopez"],
        ["Smith, John"],
        ["Anne-Marie Dupont"],
        [""],
        [None],
        ["Алла Иванова"],
        ["李 小龙"],
        [LONG],
    ]
    found = run('<gender field="Name" from="full" output="G"/>', ["Name"], rows)
    assert column(found, "G") == ["F", "M", "F", "U", None, "U", "U", "U"]


def test_gender_refuses_an_unknown_source() -> None:
    with pytest.raises(FlowError, match="from must be one of given, full"):
        run('<gender field="Name" from="last"/>', ["Name"], [])


# -- parsing -----------------------------------------------------------------------------------


def test_parse_hundreds_of_full_names_into_their_parts() -> None:
    names = full_names()
    found = run('<parse field="Name" type="name"/>', ["Name"], [[text] for text, _ in names])
    for (text, parts), row in zip(names, found, strict=True):
        assert {part: row[part] for part in parts} == parts, text


def test_parse_name_edge_cases() -> None:
    rows = [['Robert "Bob" Smith'], [None], [""], ["Алла Иванова"], [LONG]]
    found = run('<parse field="Name" type="name" prefix="n_"/>', ["Name"], rows)
    assert (found[0]["n_given"], found[0]["n_nickname"], found[0]["n_family"]) == (
        "Robert",
        "Bob",
        "Smith",
    )
    assert all(found[1][f"n_{part}"] is None for part in ("given", "family"))
    assert all(found[2][f"n_{part}"] is None for part in ("given", "family"))
    assert (found[3]["n_given"], found[3]["n_family"]) == ("Алла", "Иванова")
    assert found[4]["n_given"] is None


def test_parse_hundreds_of_us_addresses_into_their_parts() -> None:
    addresses = us_addresses()
    found = run('<parse field="A" type="address"/>', ["A"], [[text] for text, _ in addresses])
    for (text, parts), row in zip(addresses, found, strict=True):
        assert {part: row[part] for part in parts} == parts, text


def test_parse_address_po_box_and_edge_cases() -> None:
    rows = [["PO Box 12, Austin, TX 78701"], [None], [LONG], ["東京都千代田区"]]
    found = run('<parse field="A" type="address"/>', ["A"], rows)
    assert (found[0]["street"], found[0]["city"], found[0]["zip"]) == (
        "PO Box 12",
        "Austin",
        "78701",
    )
    assert found[1]["number"] is None and found[2]["number"] is None
    assert found[3]["number"] is None


def test_parse_address_needs_a_us_locale() -> None:
    with pytest.raises(FlowError, match=r"US addresses only.*fr-FR"):
        run('<parse field="A" type="address"/>', ["A"], [], locale="fr-FR")


def test_parse_email_parts_and_validity_without_network() -> None:
    rows = [
        ["John.Doe@EXAMPLE.com"],
        ["user+tag@sub.example.org"],
        ["δοκιμή@παράδειγμα.δοκιμή"],
        ["no-at-sign"],
        ["two@@example.com"],
        ["a@localhost"],
        [None],
        [LONG + "@example.com"],
    ]
    found = run('<parse field="E" type="email"/>', ["E"], rows)
    assert [(r["local"], r["domain"], r["valid"]) for r in found] == [
        ("John.Doe", "example.com", True),
        ("user+tag", "sub.example.org", True),
        ("δοκιμή", "παράδειγμα.δοκιμή", True),
        (None, None, False),
        ("two@", "example.com", False),
        ("a", "localhost", False),
        (None, None, None),
        (None, None, False),
    ]


def test_parse_phone_numbers_of_every_region() -> None:
    # given phonenumbers' example number of each of its regions (about 245), written as
    # people there write it, with the region's code
    phones = example_phones()
    assert len(phones) > 200
    rows = [[national, region] for region, national, _, _ in phones]
    # when
    found = run('<parse field="P" type="phone" countryField="C"/>', ["P", "C"], rows)
    # then
    assert column(found, "e164") == [e164 for _, _, _, e164 in phones]
    assert all(column(found, "valid"))


def test_parse_phone_international_form_needs_no_country() -> None:
    phones = example_phones()
    found = run('<parse field="P" type="phone"/>', ["P"], [[i] for _, _, i, _ in phones])
    assert column(found, "e164") == [e164 for _, _, _, e164 in phones]


def test_parse_phone_uses_the_locale_and_country_names() -> None:
    rows = [["020 7946 0018", "United Kingdom"], ["030 123456", "Germany"], ["12", None]]
    found = run('<parse field="P" type="phone" countryField="C"/>', ["P", "C"], rows)
    assert [(r["country"], r["countryCode"], r["e164"]) for r in found[:2]] == [
        ("GB", 44, "+442079460018"),
        ("DE", 49, "+4930123456"),
    ]
    assert found[2]["valid"] is False
    british = run('<parse field="P" type="phone"/>', ["P"], [["020 7946 0018"]], "en-GB")
    assert british[0]["e164"] == "+442079460018"


def test_parse_refuses_unknown_types_and_parts() -> None:
    with pytest.raises(FlowError, match="type must be one of name, address, email, phone"):
        run('<parse field="P" type="ssn"/>', ["P"], [])
    with pytest.raises(FlowError, match="a name has no part 'zip'"):
        run('<parse field="P" type="name"><part name="zip"/></parse>', ["P"], [])


# -- standardization ---------------------------------------------------------------------------


def test_standardize_per_data_type() -> None:
    columns = ["Name", "Org", "Addr", "Phone", "Email", "Date", "Country"]
    node = "<standardize>" + "".join(
        f'<field name="{c}" type="{t}"/>'
        for c, t in zip(
            columns,
            ["name", "organization", "address", "phone", "email", "date", "country"],
            strict=True,
        )
    )
    rows = [
        [
            '  dr.  JOHN "Johnny"  smith jr ',
            "ACME,  Incorporated",
            "123 North Main Street Apartment 4, Springfield, Illinois 62704",
            "(650) 253-0000",
            "John.Doe@EXAMPLE.COM",
            "12/31/2024",
            "Federal Republic of Germany",
        ],
        [
            "mary o'neil",
            "Siemens A.G.",
            "500 West Oak Avenue Suite 200, Denver, CO 80202",
            "+44 20 7946 0018",
            "not an address",
            "March 5, 2024",
            "fra",
        ],
        [None, None, None, None, None, None, None],
        ["", "", "", "", "", "", ""],
        ["Алла Иванова", "株式会社", "somewhere", "call me", "x@y", "soon", "Atlantis"],
    ]
    found = run(node + "</standardize>", columns, rows)
    assert [list(row.values()) for row in found] == [
        [
            "Dr. John Smith Jr",
            "ACME INC",
            "123 N MAIN ST APT 4, SPRINGFIELD, IL 62704",
            "+16502530000",
            "John.Doe@example.com",
            "2024-12-31",
            "DE",
        ],
        [
            "Mary O'Neil",
            "Siemens AG",
            "500 W OAK AVE STE 200, DENVER, CO 80202",
            "+442079460018",
            "not an address",
            "2024-03-05",
            "FR",
        ],
        [None] * 7,
        [""] * 7,
        # what the libraries cannot read is left as it was
        ["Алла Иванова", "株式会社", "somewhere", "call me", "x@y", "soon", "Atlantis"],
    ]


def test_standardize_dates_and_countries_follow_the_locale() -> None:
    node = (
        '<standardize><field name="D" type="date"/><field name="C" type="country"/></standardize>'
    )
    rows = [["03/05/2024", "Deutschland"], ["2024-03-05T10:30", "Allemagne"]]
    us = run(node, ["D", "C"], rows)
    german = run(node, ["D", "C"], rows, locale="de-DE")
    french = run(node, ["D", "C"], rows, locale="fr-FR")
    assert column(us, "D") == ["2024-03-05", "2024-03-05T10:30:00"]
    assert column(german, "D") == ["2024-05-03", "2024-03-05T10:30:00"]
    assert column(us, "C") == ["Deutschland", "Allemagne"]
    assert column(german, "C") == ["DE", "Allemagne"]
    assert column(french, "C") == ["Deutschland", "DE"]


def test_standardize_a_long_value_is_left_alone() -> None:
    found = run('<standardize><field name="N" type="name"/></standardize>', ["N"], [[LONG]])
    assert found[0]["N"] == LONG


def test_standardize_refuses_an_unknown_type() -> None:
    with pytest.raises(FlowError, match="type must be one of name, organization"):
        run('<standardize><field name="N" type="ssn"/></standardize>', ["N"], [])


def test_address_standardization_needs_a_us_locale() -> None:
    with pytest.raises(FlowError, match=r"US addresses only.*en-GB"):
        run('<standardize><field name="A" type="address"/></standardize>', ["A"], [], "en-GB")


# -- match codes and clusters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensitivity", "same"), [(95, False), (90, False), (85, True), (50, True)]
)
def test_match_codes_jon_smyth_and_john_smith(sensitivity: int, same: bool) -> None:
    node = f'<matchCode field="N" type="name" sensitivity="{sensitivity}" output="MC"/>'
    found = run(node, ["N"], [["Jon Smyth"], ["John Smith"]])
    first, second = column(found, "MC")
    assert (first == second) is same


def test_match_codes_per_type_and_edge_cases() -> None:
    us = parse_locale("en-US")
    assert matching.match_code("name", "Smith, John", 85, us) == matching.match_code(
        "name", "JOHN  SMITH", 85, us
    )
    assert matching.match_code("organization", "Acme Inc.", 85, us) == matching.match_code(
        "organization", "ACME Incorporated", 85, us
    )
    assert matching.match_code(
        "address", "12 Elm Street, Boston, MA 02118", 85, us
    ) == matching.match_code("address", "12 Elm St, Boston, Massachusetts 02118", 85, us)
    assert matching.match_code("phone", "(650) 253-0000", 85, us) == "+16502530000"
    assert matching.match_code("email", "Jo+news@Example.com", 85, us) == "JO@EXAMPLE.COM"
    assert matching.match_code("email", "Jo+news@Example.com", 95, us) == "JO+NEWS@EXAMPLE.COM"
    assert matching.match_code("name", None, 85, us) is None
    assert matching.match_code("name", "", 85, us) is None
    assert matching.match_code("name", LONG, 85, us) is None
    # Other scripts are kept as written (the phonetic keys read Latin letters only).
    assert matching.match_code("text", "Алла Иванова", 85, us) == "АЛЛА ИВАНОВА"


def test_match_code_sensitivity_is_checked() -> None:
    with pytest.raises(FlowError, match="'sensitivity' must be a whole number from 50 to 95"):
        run('<matchCode field="N" sensitivity="99"/>', ["N"], [])
    with pytest.raises(FlowError, match="'sensitivity' must be a whole number"):
        run('<matchCode field="N" sensitivity="high"/>', ["N"], [])


def test_cluster_rules_exact_and_similar() -> None:
    rows = [
        ["1", "john smith", "a@x.com"],
        ["2", "jon smith", None],
        ["3", "mary jones", "a@x.com"],
        ["4", "smith john", None],
        ["5", "peter pan", None],
        ["6", None, None],
    ]
    exact = run(
        '<cluster output="C"><rule><field name="E"/></rule></cluster>', ["Id", "N", "E"], rows
    )
    similar = run(
        '<cluster><rule><field name="N" similarity="85"/></rule></cluster>', ["Id", "N", "E"], rows
    )
    assert column(exact, "C") == [1, 2, 1, 3, 4, 5]
    assert column(similar, "Cluster") == [1, 1, 2, 1, 3, 4]


def test_cluster_needs_rules_and_known_fields() -> None:
    with pytest.raises(FlowError, match="needs at least one <rule>"):
        run("<cluster/>", ["N"], [])
    with pytest.raises(FlowError, match="no field 'X'"):
        run('<cluster><rule><field name="X"/></rule></cluster>', ["N"], [])


# -- identification ----------------------------------------------------------------------------


def test_identify_values_of_each_kind() -> None:
    samples = {
        "email": ["john.doe@example.com", "ANN@MAIL.EXAMPLE.ORG"],
        "phone": ["(650) 253-0000", "+44 20 7946 0018", "+49 30 123456"],
        "address": ["123 Main Street, Springfield IL 62704", "PO Box 12, Austin TX 78701"],
        "organization": ["Acme Inc.", "Siemens AG", "Tesco PLC", "Foo Bar GmbH"],
        "person": ["John Smith", "Dr. Maria Lopez", "Mary-Anne O'Neil"],
        "unknown": ["42", "!!!", LONG],
    }
    values = [[value] for kind in samples for value in samples[kind]]
    found = run('<identify field="V"/>', ["V"], values)
    kinds = [kind for kind in samples for _ in samples[kind]]
    assert column(found, "Identity") == kinds
    assert all(
        (c == 0) == (k == "unknown")
        for c, k in zip(column(found, "Identity Confidence"), kinds, strict=True)
    )


def test_identify_null_and_empty() -> None:
    found = run('<identify field="V" output="K" confidence="P"/>', ["V"], [[None], [""]])
    assert [(r["K"], r["P"]) for r in found] == [(None, None), ("unknown", 0)]


# -- locale ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "message"),
    [
        ("xx-YY", "'YY' is no ISO 3166 country"),
        ("zz-US", "CLDR has no locale for 'zz'"),
        ("english", "give a language and a country"),
    ],
)
def test_an_unsupported_locale_is_a_flow_error(locale: str, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        run('<gender field="N"/>', ["N"], [], locale=locale)


def test_the_default_locale_is_en_us() -> None:
    found = run('<standardize><field name="D" type="date"/></standardize>', ["D"], [["03/05/24"]])
    assert found[0]["D"] == "2024-03-05"
