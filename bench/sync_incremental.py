"""Incremental runs of a SQLite → SQLite direct job against its own first load.

After 1% of rows changed, 0.1% deleted and 0.1% inserted, the second run should take ≤ 30%
of the first load; a run with nothing changed ≤ 20%. Prints JSON.

Also measured in the same run: `read_floor_seconds`, a bare loop reading the source's rows
through the same driver and batch size and doing nothing with them. Synthetic change detection
has to look at every row, so no incremental run of the full strategy can be faster than it;
`read_floor_ratio` is that floor against the first load.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_engine, timed
from bench.sync_full import COLUMNS, checksum, create_source, make_row


def mutate(path: Path, rows: int, seed: int = 11) -> dict[str, int]:
    """Change 1% of the rows, delete 0.1%, insert 0.1% new ones."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, rows + 1), rows // 100 + rows // 1000)
    changed, deleted = ids[: rows // 100], ids[rows // 100 :]
    db = sqlite3.connect(path)
    db.executemany(
        "UPDATE src SET qty = qty + 1, name = name || '*' WHERE id = ?", ((i,) for i in changed)
    )
    db.executemany("DELETE FROM src WHERE id = ?", ((i,) for i in deleted))
    db.executemany(
        "INSERT INTO src VALUES (?,?,?,?,?,?,?,?,?,?)",
        (make_row(i, rng) for i in range(rows + 1, rows + 1 + rows // 1000)),
    )
    db.commit()
    db.close()
    return {"updated": len(changed), "deleted": len(deleted), "inserted": rows // 1000}


def read_floor(path: Path) -> int:
    """Read every row as the engine's reader does (fetchmany of 10,000), keeping none."""
    db = sqlite3.connect(path)
    try:
        cursor = db.execute(f"SELECT {COLUMNS} FROM src")
        total = 0
        while rows := cursor.fetchmany(10_000):
            total += len(rows)
        return total
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-incr-") as tmp:
        folder = Path(tmp)
        source, target = folder / "source.sqlite3", folder / "target.sqlite3"
        create_source(source, args.rows)
        job = {
            "key": "bench_incremental",
            "sql": f"SELECT {COLUMNS} FROM src",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{target}",
            "target_table": "dst",
        }
        first = run_engine(folder / "data", job)
        changes = mutate(source, args.rows)
        second = run_engine(folder / "data", job)
        same_after_changes = checksum(target, "dst") == checksum(source, "src")
        third = run_engine(folder / "data", job)
        floor = min(timed(read_floor, source)[0] for _ in range(3))
        print(
            json.dumps(
                {
                    "benchmark": "sync_incremental",
                    "rows": args.rows,
                    "changes": changes,
                    "first_load_seconds": first["seconds"],
                    "changed_run_seconds": second["seconds"],
                    "changed_run_ratio": round(second["seconds"] / first["seconds"], 3),
                    "changed_run_target": 0.30,
                    "changed_run_counts": {
                        "upserts": second["record_count"],
                        "deletes": second["delete_count"],
                    },
                    "unchanged_run_seconds": third["seconds"],
                    "unchanged_run_ratio": round(third["seconds"] / first["seconds"], 3),
                    "unchanged_run_target": 0.20,
                    "unchanged_run_upserts": third["record_count"],
                    "read_floor_seconds": round(floor, 3),
                    "read_floor_ratio": round(floor / first["seconds"], 3),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in (first, second, third)),
                    "statuses": [r["status"] for r in (first, second, third)],
                    "target_matches_source": same_after_changes
                    and checksum(target, "dst") == checksum(source, "src"),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
