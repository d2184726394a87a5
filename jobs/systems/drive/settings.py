"""A drive reader's `DriveSourceSettings` and a drive writer's target, typed once.

The vendor's definitions carry the settings either in `JsonData.DriveSourceSettings` or flat in
`JsonData` (its own exports do); `jobs.sync.spec` hands either over as `source_settings`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from jobs.sync.spec import SpecError, columns, flag, text
from jobs.systems.batch import LOGICAL_TYPES, Column
from jobs.systems.drive import compression

FORMATS = {
    "csv": "csv",
    "txt": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "jsonlines": "jsonl",
    "json lines": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "xml": "xml",
    "excel": "excel",
    "xlsx": "excel",
    "xlsm": "excel",
}
# Named so that the error says what to do instead (openpyxl reads Office Open XML only).
LEGACY_EXCEL = {"xls", "xlsb"}


@dataclass(frozen=True)
class SourceSettings:
    file_format: str = "csv"  # csv, json (array or lines, found from the file), jsonl, parquet, xml
    patterns: list[str] = field(default_factory=lambda: ["*"])
    subfolders: bool = False
    updated_only: bool = False
    folder_column: str = ""  # '' when DriveAddFolderColumn is off
    schema_file: str = ""
    selected: list[str] = field(default_factory=list)
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    root_path: str = ""  # TxDocumentRootPath (XML)
    sheet: str = ""  # DriveExcelSheet: a worksheet's name ('' = the first one)

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str = "DriveSourceSettings") -> SourceSettings:
        def get(name: str) -> Any:
            return raw.get(name)

        fmt = text(get("DriveFileFormat"), f"{where}.DriveFileFormat").lower()
        if fmt in LEGACY_EXCEL:
            raise SpecError(
                f"{where}.DriveFileFormat '{fmt}': only Excel workbooks in the .xlsx/.xlsm "
                "format are read; save the files as .xlsx."
            )
        if fmt and fmt not in FORMATS:
            raise SpecError(
                f"{where}.DriveFileFormat '{fmt}' is not supported "
                "(CSV, JSON, JSONL, Parquet, XML or Excel)."
            )
        patterns = [
            p.strip()
            for p in text(get("DriveFilePattern"), f"{where}.DriveFilePattern").split(";")
            if p.strip()
        ]
        delimiter = _char(get("DriveCsvDelimiter"), f"{where}.DriveCsvDelimiter", ",")
        quote = _char(get("DriveCsvQuote"), f"{where}.DriveCsvQuote", '"')
        add_folder = flag(get("DriveAddFolderColumn"), f"{where}.DriveAddFolderColumn")
        folder_name = text(get("DriveFolderColumnName"), f"{where}.DriveFolderColumnName")
        return cls(
            file_format=FORMATS[fmt] if fmt else _format_from(patterns),
            patterns=patterns or ["*"],
            subfolders=flag(get("DriveIncludeSubfolders"), f"{where}.DriveIncludeSubfolders"),
            updated_only=flag(get("DriveUpdatedFilesOnly"), f"{where}.DriveUpdatedFilesOnly"),
            folder_column=(folder_name or "_folder") if add_folder else "",
            schema_file=text(get("DriveSchemaFile"), f"{where}.DriveSchemaFile"),
            selected=columns(get("DriveFileSelectedColumns")),
            delimiter=delimiter,
            quote=quote,
            header=flag(get("DriveCsvHeader"), f"{where}.DriveCsvHeader", default=True),
            encoding=text(get("DriveFileEncoding"), f"{where}.DriveFileEncoding") or "utf-8",
            root_path=text(get("TxDocumentRootPath"), f"{where}.TxDocumentRootPath"),
            sheet=text(get("DriveExcelSheet"), f"{where}.DriveExcelSheet"),
        )

    def fingerprint(self) -> str:
        """What the files were read with: remembered files are forgotten when it changes."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _char(value: Any, where: str, default: str) -> str:
    given = text(value, where)
    if given in ("\\t", "tab", "TAB"):
        return "\t"
    if not given:
        return default
    if len(given) != 1:
        raise SpecError(f"{where} must be one character, not {given!r}.")
    return given


def _format_from(patterns: list[str]) -> str:
    for pattern in patterns:
        extension = posixpath.splitext(compression.without(pattern))[1].lstrip(".").lower()
        if extension in LEGACY_EXCEL:
            raise SpecError(
                f"DriveFilePattern '{pattern}': only Excel workbooks in the .xlsx/.xlsm format "
                "are read; save the files as .xlsx."
            )
        if extension in FORMATS:
            return FORMATS[extension]
    return "csv"


def parse_schema(document: str, where: str) -> list[Column]:
    """`DriveSchemaFile`: `[{"name": …, "type": …}, …]`, `{"columns": [...]}` or `{name: type}`."""
    try:
        body = json.loads(document)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    if isinstance(body, dict) and isinstance(body.get("columns"), list):
        body = body["columns"]
    if isinstance(body, dict):
        body = [{"name": name, "type": kind} for name, kind in body.items()]
    if not isinstance(body, list) or not body:
        raise SpecError(f"{where} must list the columns.")
    found: list[Column] = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SpecError(f"{where}: each column needs a name.")
        kind = str(item.get("type") or "string").lower()
        if kind not in LOGICAL_TYPES:
            raise SpecError(
                f"{where}: column '{item['name']}' has type '{kind}' "
                f"(one of {', '.join(LOGICAL_TYPES)})."
            )
        found.append(
            Column(
                item["name"],
                kind,
                precision=item.get("precision"),
                scale=item.get("scale"),
                length=item.get("length"),
            )
        )
    return found


@dataclass(frozen=True)
class TargetFiles:
    """A drive writer's `TargetObject`: `folder/name.ext` → files `name_<ExecutionId>.ext`."""

    folder: str
    stem: str
    file_format: str  # csv, jsonl, parquet
    compression: str = ""  # the extension of the codec the files are written with: gz, …

    @classmethod
    def parse(cls, target_object: str, job_key: str) -> TargetFiles:
        raw = (target_object or "").replace("\\", "/").strip()
        folder, name = posixpath.split(raw) if not raw.endswith("/") else (raw, "")
        packed = compression.extension_of(name)
        stem, extension = posixpath.splitext(compression.without(name))
        extension = extension.lstrip(".").lower()
        fmt = {"csv": "csv", "jsonl": "jsonl", "json": "jsonl", "parquet": "parquet"}.get(extension)
        if extension and fmt is None:
            raise SpecError(
                f"TargetObject '{target_object}': a drive target writes .csv, .jsonl or "
                ".parquet files."
            )
        if packed and fmt == "parquet":
            raise SpecError(
                f"TargetObject '{target_object}': Parquet files compress their columns "
                "themselves; name the files .parquet."
            )
        if packed and not extension:
            raise SpecError(
                f"TargetObject '{target_object}': name the format before the compression "
                f"(films.csv.{packed}, films.jsonl.{packed})."
            )
        if not extension and stem:  # a folder named without its trailing slash
            folder, stem = posixpath.join(folder, stem), ""
        return cls(folder.strip("/"), stem or _safe(job_key), fmt or "csv", packed)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned or "rows"
