"""XML files as rows: DataZen's TxDocumentRootPath language, and unsafe documents refused."""

from __future__ import annotations

import pytest

from jobs.systems.drive.xmlrows import xml_rows

DOCUMENT = b"""<?xml version="1.0"?>
<response xmlns="urn:forms" xmlns:x="urn:extra">
  <model><id>7</id><name>Stores</name>
    <field x:kind="text"><name>city</name>
      <columnType><type>string</type><size>40</size></columnType></field>
    <field x:kind="num"><name>sales</name>
      <columnType><type>int</type><size>8</size></columnType></field>
  </model>
</response>"""


def test_rows_with_prefixed_parent_and_child_segments() -> None:
    # when rows are the fields, with their parent's leaves as r_… and their columnType as t_…
    found = list(xml_rows(DOCUMENT, "//model/field||r_=../.||t_=columnType"))
    # then namespaces are ignored and each segment adds its element's leaves
    assert [row for _, row in found] == [
        {
            "kind": "text",
            "name": "city",
            "r_id": "7",
            "r_name": "Stores",
            "t_type": "string",
            "t_size": "40",
        },
        {
            "kind": "num",
            "name": "sales",
            "r_id": "7",
            "r_name": "Stores",
            "t_type": "int",
            "t_size": "8",
        },
    ]
    assert [line for line, _ in found] == [4, 6]


def test_an_unprefixed_segment_adds_leaves_as_they_are() -> None:
    found = [row for _, row in xml_rows(DOCUMENT, "//columnType||../.")]
    # the element's attributes are columns too
    assert found[0] == {"type": "string", "size": "40", "kind": "text", "name": "city"}


def test_without_a_path_the_root_children_are_the_rows() -> None:
    assert [row["id"] for _, row in xml_rows(DOCUMENT, "")] == ["7"]


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><r><x>&a;</x></r>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
        b"<r><x>&s;</x></r>",
    ],
)
def test_documents_with_a_dtd_are_refused(document: bytes) -> None:
    with pytest.raises(ValueError, match="DTD"):
        list(xml_rows(document, "/r"))


def test_a_bad_xpath_is_named() -> None:
    with pytest.raises(ValueError, match="TxDocumentRootPath '//\\[' is not a valid XPath"):
        list(xml_rows(DOCUMENT, "//["))
