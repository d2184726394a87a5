"""The unit of data that moves through the engine: a batch of rows with typed columns.

Sources yield batches, pipeline components transform them, change detection and the change
log consume them, writers apply them. Rows are tuples in column order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Logical column types, independent of any database dialect. A source maps its dialect's
# types onto these; a target maps them back. Parameters ride in Column.length/precision/scale.
LOGICAL_TYPES = (
    "integer",  # 64-bit signed
    "decimal",  # exact, with precision and scale
    "float",  # double precision
    "string",  # text, `length` when bounded
    "boolean",
    "date",
    "time",
    "datetime",  # timestamp without time zone
    "datetimetz",  # timestamp with time zone
    "binary",
    "json",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    nullable: bool = True
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    # Markup the job's own SQL wrote (jobs.systems.db.tsql), the data in it escaped there: an
    # HTTP body template inserts it as is (docs/http.md, "Placeholders").
    markup: bool = False


@dataclass
class Batch:
    columns: list[Column]
    rows: list[tuple] = field(default_factory=list)
    # One 64-bit digest per row when the source computed them (jobs.systems.db.hashing):
    # change detection compares these instead of hashing the rows itself.
    hashes: list[int] | None = None

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def index(self, name: str) -> int:
        """Position of a column, matched case-insensitively as SQL names are."""
        lowered = name.lower()
        for position, column in enumerate(self.columns):
            if column.name.lower() == lowered:
                return position
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.rows)
