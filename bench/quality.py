"""Per-row cost of each data-quality node, next to a one-expression flow in the same run.

Compiles small flows (jobs.flows.language) in this process, one node each, and runs them over
the same generated contacts: once with every value new (the process's answer cache cleared,
what a first request pays) and once again over the same rows (cache warm, what repeated
values such as given names or ZIP codes cost). The baseline is an `<expression>` node
computing `upper(Name)`. Prints JSON: microseconds per row, best of BENCH_ROUNDS.

Usage: .venv/bin/python bench/quality.py   (BENCH_ROWS, BENCH_ROUNDS to change the size)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings_test")

import django  # noqa: E402  (settings must be chosen before Django loads)

django.setup()

from jobs.flows.language.compiler import compile_flow  # noqa: E402
from jobs.flows.language.nodes import RunState  # noqa: E402
from jobs.flows.language.quality import clear_caches  # noqa: E402
from tests.flows_quality_data import contacts  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
COLUMNS = ["Name", "Email", "Phone", "Address"]

NODES = {
    "baseline: expression upper(Name)": (
        '<expression><field name="U">upper(Name)</field></expression>'
    ),
    "gender (full name)": '<gender field="Name" from="full"/>',
    "parse name": '<parse field="Name" type="name"/>',
    "parse address (US)": '<parse field="Address" type="address"/>',
    "parse email": '<parse field="Email" type="email"/>',
    "parse phone": '<parse field="Phone" type="phone"/>',
    "standardize name": '<standardize><field name="Name" type="name"/></standardize>',
    "standardize address (USPS)": (
        '<standardize><field name="Address" type="address"/></standardize>'
    ),
    "standardize phone (E.164)": '<standardize><field name="Phone" type="phone"/></standardize>',
    "standardize email": '<standardize><field name="Email" type="email"/></standardize>',
    "match code name 85": '<matchCode field="Name" type="name" sensitivity="85"/>',
    "match code address 85": '<matchCode field="Address" type="address" sensitivity="85"/>',
    "identify": '<identify field="Name"/>',
    "cluster (2 exact rules)": (
        '<cluster><rule><field name="Name"/><field name="Phone"/></rule>'
        '<rule><field name="Email"/></rule></cluster>'
    ),
}  # fmt: skip


def flow(node: str) -> Any:
    fields = "".join(f'<field name="{name}"/>' for name in COLUMNS)
    xml = (
        f"<flow><inputs><table>{fields}</table></inputs><nodes><externalData/>{node}</nodes></flow>"
    )
    return compile_flow("bench.ddf", xml)


def run_once(compiled: Any, rows: list[list[Any]]) -> float:
    metadata = [{"name": name, "type": "string"} for name in COLUMNS]
    macros, tables = compiled.prepare_inputs({"dataTable": {"metadata": metadata, "data": rows}})
    started = time.perf_counter()
    compiled.run_stream(RunState(macros, tables))
    return time.perf_counter() - started


def per_row_us(seconds: float, rows: int) -> float:
    return round(seconds / rows * 1e6, 1)


def main() -> None:
    people = contacts(count=ROWS, duplicates=ROWS // 4, seed=2026)
    rows = [[c.name, c.email, c.phone, c.address] for c in people]
    figures: dict[str, Any] = {}
    for label, node in NODES.items():
        cold, warm = [], []
        for _ in range(ROUNDS):
            compiled = flow(node)
            clear_caches()  # every value new, as for a first request
            cold.append(run_once(compiled, rows))
            warm.append(run_once(compiled, rows))
        figures[label] = {"cold_us_per_row": per_row_us(min(cold), ROWS)}
        figures[label]["warm_us_per_row"] = per_row_us(min(warm), ROWS)
    base = figures["baseline: expression upper(Name)"]["cold_us_per_row"]
    for entry in figures.values():
        entry["cold_over_baseline"] = round(entry["cold_us_per_row"] / base, 1)
    print(json.dumps({"rows": ROWS, "rounds": ROUNDS, "nodes": figures}, indent=2))


if __name__ == "__main__":
    main()
