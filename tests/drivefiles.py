"""Helpers for the drive tests: stored drive connections, files, and reading written files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook

from jobs.models import ConnectionString, ConnectionType, new_guid

FILMS = [
    (1, "Academy Dinosaur", 2006, 0.99),
    (2, "Ace Goldfinger", 2006, 4.99),
    (3, "Adaptation Holes", 2007, 2.99),
    (4, "Affair Prejudice", 2007, 2.99),
    (5, "African Egg", 2008, 2.99),
]
FILM_COLUMNS = ["id", "title", "year", "rate"]


def drive_connection(value: dict[str, Any] | str, system: str = "Local Path") -> str:
    key = f"drive_{new_guid()[:8]}"
    ConnectionString.objects.create(
        key=key,
        system=system,
        connection_type=ConnectionType.DRIVE,
        value=value if isinstance(value, str) else json.dumps(value),
    )
    return key


def write_csv(path: Path, rows: list[tuple], columns: list[str] = FILM_COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(columns)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_format(folder: Path, fmt: str, rows: list[tuple], name: str = "films") -> Path:
    """`rows` of FILMS as a file of format `fmt` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [dict(zip(FILM_COLUMNS, row, strict=True)) for row in rows]
    if fmt == "csv":
        path = folder / f"{name}.csv"
        write_csv(path, rows)
    elif fmt == "json":
        path = folder / f"{name}.json"
        path.write_text(json.dumps(records, indent=2))
    elif fmt == "jsonl":
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "parquet":
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(records), path, row_group_size=2)
    elif fmt == "xml":
        path = folder / f"{name}.xml"
        body = "".join(
            f'<film id="{r["id"]}"><title>{r["title"]}</title><year>{r["year"]}</year>'
            f"<rate>{r['rate']}</rate></film>"
            for r in records
        )
        path.write_text(
            f'<?xml version="1.0"?><catalog xmlns="urn:films"><films>{body}</films></catalog>'
        )
    elif fmt == "xlsx":
        path = folder / f"{name}.xlsx"
        write_xlsx(path, {"films": [FILM_COLUMNS, *rows]})
    else:
        raise ValueError(fmt)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[Any] | tuple]]) -> None:
    """A workbook with a worksheet per entry, rows as given (the first is usually a header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook(write_only=True)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)
