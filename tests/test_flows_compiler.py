"""Flow XML → compiled flow: nodes, typed inputs, outputs, and the errors a flow author sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.flows.errors import FlowError, InputError
from jobs.flows.language.compiler import compile_flow
from jobs.flows.language.parser import parse_flow

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def table(metadata: list[dict], data: list[list]) -> dict:
    return {"metadata": metadata, "data": data}


def test_determine_gender_standardizes_and_guesses() -> None:
    # given
    flow = compile_flow("Determine_Gender.ddf", example("Determine_Gender.ddf"))
    inputs = {
        "dataTable": table(
            [{"name": "Name", "type": "string"}],
            [["  mary   smith"], ["JOHN_doe"], ["xena"], [""]],
        )
    }
    # when
    outputs = flow.run(inputs)
    # then
    assert outputs == {
        "RecordsProcessed": "4",
        "dataTable": {
            "metadata": [
                {"name": "Name", "type": "string", "maxChars": 255},
                {"name": "Gender", "type": "string", "maxChars": 1},
            ],
            # Xena is not in gender-guesser's dictionary: unknown, not guessed from its ending
            "data": [["Mary Smith", "F"], ["John Doe", "M"], ["Xena", "U"], ["", "U"]],
        },
    }


DOCUMENT_METADATA = [
    {"name": "Full Name", "type": "string", "maxChars": 255},
    {"name": "Age", "type": "integer"},
    {"name": "Donor", "type": "boolean"},
    {"name": "Birthday", "type": "date"},
    {"name": "Temperature", "type": "real"},
]


def test_the_documents_execute_example() -> None:
    # given the vendor document's own request
    flow = compile_flow("dataSvcTypes.ddf", example("dataSvcTypes.ddf"))
    inputs = {
        "Process Priority": "low",
        "Logging": "disable",
        "dataTable": table(
            DOCUMENT_METADATA,
            [
                ["sample string", 2, True, "2014-10-13", 5.5],
                ["another string", 246, False, "2014-12-31", 15.7075],
            ],
        ),
    }
    # when
    outputs = flow.run(inputs)
    # then the document's own response
    assert outputs == {
        "Address": None,
        "RecordsProcessed": "2",
        "dataTable": {
            "metadata": [
                {"name": "status", "type": "string", "maxChars": 15},
                {"name": "status code", "type": "integer"},
            ],
            "data": [["success", 1], ["", None]],
        },
    }


def test_typed_macro_changes_the_result() -> None:
    flow = compile_flow("dataSvcTypes.ddf", example("dataSvcTypes.ddf"))
    rows = table(DOCUMENT_METADATA[:3], [["a", 10, True], ["", 40, False]])
    assert flow.run({"MinimumAge": "18", "dataTable": rows})["dataTable"]["data"] == [
        ["too young", 2]
    ]
    with pytest.raises(InputError, match="'MinimumAge': expected an integer"):
        flow.run({"MinimumAge": "five", "dataTable": rows})


def test_dates_booleans_and_decimals_are_rendered_by_type() -> None:
    flow = compile_flow(
        "types.ddf",
        """<flow>
        <inputs><table><field name="d" type="date"/><field name="t" type="decimal"/></table>
        </inputs>
        <outputs><table>
          <field name="next" type="date"/><field name="hot" type="boolean"/>
          <field name="t2" type="decimal"/><field name="n" type="integer"/>
        </table></outputs>
        <nodes><externalData/><expression>
          <field name="next" type="date">date(d, '+1 day')</field>
          <field name="hot" type="boolean">t &gt; 37.5</field>
          <field name="t2" type="decimal">t * 2</field>
          <field name="n" type="integer">'7'</field>
        </expression></nodes></flow>""",
    )
    outputs = flow.run(
        {
            "dataTable": table(
                [{"name": "d", "type": "date"}, {"name": "t", "type": "decimal"}],
                [["2014-12-31", "38.25"], [None, 1]],
            )
        }
    )
    assert outputs["dataTable"]["data"] == [["2015-01-01", True, 76.5, 7], [None, False, 2, 7]]


@pytest.mark.parametrize(
    ("metadata", "data", "message"),
    [
        (
            [{"name": "Name", "type": "integer"}],
            [["x"]],
            "row 1, field 'Name': expected an integer",
        ),
        (
            [{"name": "Name", "type": "string", "maxChars": 3}],
            [["abcd"]],
            "row 1, field 'Name'.*maxChars 3",
        ),
        (
            [{"name": "Name", "type": "string"}],
            [["a"], ["b", "c"]],
            "row 2 has 2 values, expected 1",
        ),
        ([{"name": "Nom", "type": "string"}], [["a"]], "missing required field 'Name'"),
        ([{"name": "Name", "type": "money"}], [["a"]], "unknown type 'money'"),
        ([{"name": "Name", "type": "string"}], [[None]], "row 1, field 'Name' is required"),
    ],
)
def test_bad_inputs_name_the_field_and_row(metadata: list, data: list, message: str) -> None:
    flow = compile_flow("Determine_Gender.ddf", example("Determine_Gender.ddf"))
    with pytest.raises(InputError, match=message):
        flow.run({"dataTable": table(metadata, data)})


def test_flow_without_inputs_runs_on_empty_body() -> None:
    flow = compile_flow(
        "hello.ddf",
        """<flow><outputs><macro name="Greeting" expression="'hello'"/>
        <macro name="RecordsProcessed"/></outputs></flow>""",
    )
    assert flow.run({}) == {"Greeting": "hello", "RecordsProcessed": "0"}
    assert flow.run(None) == {"Greeting": "hello", "RecordsProcessed": "0"}


def test_flow_with_no_outputs_gives_none() -> None:
    assert compile_flow("quiet.ddf", "<flow/>").run({}) is None


def test_field_layout_renames_reorders_drops() -> None:
    flow = compile_flow(
        "layout.ddf",
        """<flow>
        <inputs><table><field name="a" type="integer"/><field name="b"/><field name="c"/></table>
        </inputs>
        <outputs><table><field name="C2"/><field name="a" type="integer"/></table></outputs>
        <nodes><externalData/>
          <fieldLayout><field name="c" as="C2"/><field name="a"/></fieldLayout>
        </nodes></flow>""",
    )
    outputs = flow.run({"dataTable": table([{"name": n} for n in "abc"], [["1", "x", "y"]])})
    assert outputs["dataTable"]["data"] == [["y", 1]]


def test_expression_outputs_replace_append_and_see_each_other() -> None:
    # given an expression node whose later fields read earlier ones, one replacing an input
    # field, one computed twice, and one reading a macro
    flow = compile_flow(
        "steps.ddf",
        """<flow>
        <inputs><macro name="Suffix" default="!"/>
          <table><field name="Name"/><field name="Age" type="integer"/></table></inputs>
        <outputs><table><field name="Name"/><field name="Age" type="integer"/>
          <field name="Initial"/><field name="Label"/></table></outputs>
        <nodes><externalData/>
          <expression>
            <field name="Initial">upper(substr(Name, 1, 1))</field>
            <field name="Name">Initial || lower(substr(Name, 2))</field>
            <field name="Label">Name || ' ' || coalesce(Age, '?')</field>
            <field name="Label">Label || Suffix</field>
            <field name="age" type="integer">Age + 1</field>
          </expression>
        </nodes></flow>""",
    )
    # when it runs
    outputs = flow.run(
        {"dataTable": table([{"name": "Name"}, {"name": "Age"}], [["aNN", 3], ["bob", None]])}
    )
    # then each field sees the ones before it, in order, and replaced fields stay in place
    assert outputs["dataTable"]["data"] == [
        ["Ann", 4, "A", "Ann 3!"],
        ["Bob", None, "B", "Bob ?!"],
    ]


def test_an_expression_field_named_like_a_macro_hides_it_from_later_fields() -> None:
    flow = compile_flow(
        "shadow.ddf",
        """<flow>
        <inputs><macro name="Tag" default="x"/><table><field name="Name"/></table></inputs>
        <outputs><table><field name="Name"/><field name="A"/><field name="Tag"/>
          <field name="B"/></table></outputs>
        <nodes><externalData/>
          <expression>
            <field name="A">Tag || '1'</field>
            <field name="Tag">'y'</field>
            <field name="B">Tag || '2'</field>
          </expression>
        </nodes></flow>""",
    )
    outputs = flow.run({"dataTable": table([{"name": "Name"}], [["n"]])})
    assert outputs["dataTable"]["data"] == [["n", "x1", "y", "y2"]]


def test_standardize_patterns() -> None:
    flow = compile_flow(
        "phones.ddf",
        """<flow><inputs><table><field name="Phone"/></table></inputs>
        <outputs><table><field name="Phone"/></table></outputs>
        <nodes><externalData/><standardize><field name="Phone" collapseSpaces="true" case="upper">
          <pattern match="(999) 999-9999" output="999-999-9999"/>
          <pattern match="AA9 9AA" output="AA9-9AA"/>
        </field></standardize></nodes></flow>""",
    )
    data = [["(919)  555-1234"], [" sw1 2ab "], ["12"]]
    outputs = flow.run({"dataTable": table([{"name": "Phone"}], data)})
    assert outputs["dataTable"]["data"] == [["919-555-1234"], ["SW1-2AB"], ["12"]]


@pytest.mark.parametrize(
    ("xml", "line", "message"),
    [
        ("<flow>\n<nodes>\n<frobnicate/>\n</nodes></flow>", 3, "unknown node <frobnicate>"),
        (
            "<flow>\n<nodes>\n<filter condition='Nope &gt; 1'/>\n</nodes></flow>",
            3,
            "no such column: Nope",
        ),
        (
            "<flow>\n<inputs><table><field name='a' type='money'/></table></inputs></flow>",
            2,
            "unknown type",
        ),
        (
            "<flow>\n<nodes>\n<expression><field name='x'>1 +* 2</field></expression>"
            "</nodes></flow>",
            3,
            "syntax error",
        ),
        ("<flow>\n<nodes>\n<flow ref='Missing.ddf'/></nodes></flow>", 3, "cannot be resolved"),
        ("<flow>\n<nodes>\n<unclosed></nodes></flow>", 3, "not well-formed"),
        ("<notaflow/>", 1, "root element must be <flow>"),
    ],
)
def test_invalid_flow_names_line_and_problem(xml: str, line: int, message: str) -> None:
    with pytest.raises(FlowError, match=message) as caught:
        compile_flow("bad.ddf", xml)
    assert caught.value.line == line


def test_external_entity_is_refused_and_reads_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = f"""<?xml version="1.0"?>
<!DOCTYPE flow [<!ENTITY xxe SYSTEM "file://{secret}">]>
<flow><description>&xxe;</description></flow>"""
    with pytest.raises(FlowError, match="DOCTYPE") as caught:
        parse_flow(xml)
    assert "TOP-SECRET" not in str(caught.value)
    assert caught.value.line == 2


def test_entity_expansion_bomb_is_refused() -> None:
    xml = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<flow><description>&lol3;</description></flow>"""
    with pytest.raises(FlowError, match="not allowed"):
        parse_flow(xml)


def test_metadata_comes_from_the_xml_without_running() -> None:
    spec = parse_flow(example("dataSvcTypes.ddf"))
    assert spec.description == "a data service that exposes all available data types"
    assert [m.name for m in spec.input_macros] == ["Process Priority", "Logging", "MinimumAge"]
    assert [f.name for f in spec.input_tables[0].fields][:2] == ["Full Name", "Age"]
    assert [f.name for f in spec.output_table.fields] == ["status", "status code"]
