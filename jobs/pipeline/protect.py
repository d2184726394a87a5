"""Components that protect values: DataHashing (MD5 … SHA512) and DataMasking."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from jobs.pipeline.base import Component, first_of, name_list, register
from jobs.pipeline.types import ConversionError, convert
from jobs.systems.batch import Batch, Column

ALGORITHMS = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha384": "sha384",
    "sha-384": "sha384",
    "sha512": "sha512",
    "sha-512": "sha512",
}
_TEXT = Column("value", "string")


def _columns(component: Component, batch: Batch, names: list[str]) -> list[int]:
    positions = []
    for name in names:
        try:
            positions.append(batch.index(name))
        except KeyError:
            raise component.fail(
                f"column '{name}' is not in the data ({', '.join(batch.names)})"
            ) from None
    return positions


def _text(value: Any) -> str:
    try:
        return convert(value, _TEXT)
    except ConversionError:
        return repr(value)


@register
class DataHashing(Component):
    """Replace each chosen column by its digest, or add `TargetColumn` hashing them together.

    Values are hashed as UTF-8 text; the digest is lowercase hex (or base64 with
    `Encoding: base64`). Null stays null.
    """

    name = "DataHashing"
    aliases = ("Hashing", "DataHash", "HashColumns", "DataHashColumns")

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        algorithm = str(first_of(config, "Algorithm", "HashType", "HashAlgorithm", default=""))
        self.algorithm = ALGORITHMS.get(algorithm.strip().lower())
        if self.algorithm is None:
            raise self.fail(
                f"unknown hash algorithm '{algorithm}' (MD5, SHA1, SHA256, SHA384 or SHA512)"
            )
        self.names = name_list(first_of(config, "Columns", "ColumnNames", "ColumnName"))
        if not self.names:
            raise self.fail("no columns to hash (set Columns)")
        self.target = str(first_of(config, "TargetColumn", "OutputColumn", default="")).strip()
        self.base64 = str(first_of(config, "Encoding", default="hex")).lower() == "base64"
        self.separator = str(first_of(config, "Separator", default="|"))

    def digest(self, text: str) -> str:
        raw = hashlib.new(self.algorithm, text.encode("utf-8"))  # type: ignore[arg-type]
        return base64.b64encode(raw.digest()).decode() if self.base64 else raw.hexdigest()

    def apply(self, batch: Batch) -> Batch:
        positions = _columns(self, batch, self.names)
        if self.target:
            rows = []
            for row in batch.rows:
                values = [row[i] for i in positions]
                joined = self.separator.join("" if v is None else _text(v) for v in values)
                hashed = None if all(v is None for v in values) else self.digest(joined)
                rows.append((*row, hashed))
            return Batch([*batch.columns, Column(self.target, "string")], rows)
        columns = list(batch.columns)
        for i in positions:
            columns[i] = Column(columns[i].name, "string", columns[i].nullable)
        chosen = set(positions)
        rows = [
            tuple(
                (None if v is None else self.digest(_text(v))) if i in chosen else v
                for i, v in enumerate(row)
            )
            for row in batch.rows
        ]
        return Batch(columns, rows)


@register
class DataMasking(Component):
    """Mask the chosen columns' text, keeping `KeepFirst` / `KeepLast` characters visible."""

    name = "DataMasking"
    aliases = ("Masking", "DataMask", "MaskColumns", "DataMaskColumns")

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        self.names = name_list(first_of(config, "Columns", "ColumnNames", "ColumnName"))
        if not self.names:
            raise self.fail("no columns to mask (set Columns)")
        self.mask = str(first_of(config, "MaskChar", "MaskCharacter", default="*")) or "*"
        try:
            self.keep_first = int(first_of(config, "KeepFirst", "UnmaskedStart", default=0))
            self.keep_last = int(first_of(config, "KeepLast", "UnmaskedEnd", default=0))
            fixed = first_of(config, "MaskLength", "FixedLength", default=None)
            self.fixed = int(fixed) if fixed not in (None, "", 0, "0") else None
        except (TypeError, ValueError):
            raise self.fail("KeepFirst, KeepLast and MaskLength must be numbers") from None

    def masked(self, value: Any) -> Any:
        if value is None:
            return None
        text = _text(value)
        if len(text) <= self.keep_first + self.keep_last:
            # Too short to show anything safely: mask it all.
            return self.mask * (self.fixed or len(text))
        head = text[: self.keep_first]
        tail = text[len(text) - self.keep_last :] if self.keep_last else ""
        hidden = len(text) - len(head) - len(tail)
        return head + self.mask * (self.fixed or hidden) + tail

    def apply(self, batch: Batch) -> Batch:
        positions = set(_columns(self, batch, self.names))
        columns = [
            Column(c.name, "string", c.nullable) if i in positions else c
            for i, c in enumerate(batch.columns)
        ]
        rows = [
            tuple(self.masked(v) if i in positions else v for i, v in enumerate(row))
            for row in batch.rows
        ]
        return Batch(columns, rows)
