"""Batch type at the connector boundary: Python row tuples (today) vs Arrow record batches.

On the data sets of bench/sync_full.py (SQLite, 10 columns) and bench/sync_postgres.py
(PostgreSQL, 10 columns), one run measures, alternating, best of --repeat:

- `tuples`: the engine's hot path as it is, through its own functions: read_batches (10,000
  rows), batch_keys + encode_frame + pickle_rows + row hashes + batch_digest (what
  detect_full does), the change-log frame (restricted pickle, Zstandard level 1), and
  apply_frames, the real writer (PostgreSQL: COPY into a staging table + INSERT … ON CONFLICT;
  SQLite: executemany upsert), all in one target transaction;
- `arrow_adbc` / `arrow_cx`: the same steps on Arrow record batches: read with the ADBC driver
  or ConnectorX (`arrow_stream`), hash rows with polars' `hash_rows` and take the key column,
  write an Arrow IPC stream (zstd level 1) as the change-log frame, and write the target with
  ADBC bulk ingest (binary COPY on PostgreSQL) into a staging table + the same upsert;
- `arrow_adbc_append` (PostgreSQL): as `arrow_adbc`, but the ingest goes straight into the empty
  target (a first load needs no upsert): the floor of an Arrow writer;
- `boundary`: what crossing between the two types costs per batch (Arrow → tuples → Arrow),
  a pyarrow-only row hash beside polars', and reading keys with digests computed in the source
  (issue 20's push-down) through either reader;
- the reference each bench compares with: the fetchmany/executemany loop of sync_full.py,
  the binary COPY pipe of sync_postgres.py.

Each path runs in its own child process, so its peak RSS is its own; that is why imports sit
inside the functions: a child loads only its path's libraries (the engine's after
django.setup()). Steps run one after the
other in one thread (the engine overlaps the change-log compression on a thread; here each
step's time is its own). Every target is compared with the source. Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import child_result

BATCH_ROWS = 10_000
KEY = "id"
PATHS = {
    "sqlite": ["reference", "tuples", "arrow_adbc", "arrow_cx", "boundary"],
    "postgres": ["reference", "tuples", "arrow_adbc", "arrow_cx", "arrow_adbc_append", "boundary"],
}


# -- measurement helpers -------------------------------------------------------------------------
class Steps:
    """Wall and CPU seconds per named step, added up over the batches of a run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(name, time.perf_counter() - started, time.process_time() - cpu)

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def report(self) -> dict[str, Any]:
        return {
            "steps_seconds": {k: round(v, 3) for k, v in self.wall.items()},
            "steps_cpu_seconds": {k: round(v, 3) for k, v in self.cpu.items()},
        }


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed_iter(steps: Steps, name: str, items: Iterator[Any]) -> Iterator[Any]:
    """The items of `items`, the time spent producing them added to step `name`."""
    while True:
        started, cpu = time.perf_counter(), time.process_time()
        item = next(items, None)
        steps.add(name, time.perf_counter() - started, time.process_time() - cpu)
        if item is None:
            return
        yield item


# -- data sets -----------------------------------------------------------------------------------
def postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    import psycopg

    from bench.sync_postgres import ADMIN

    try:
        with psycopg.connect(ADMIN, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


def pg_uri(database: str) -> str:
    from bench.sync_postgres import HOST, PORT, USER

    return f"postgresql://{USER}@{HOST}:{PORT}/{database}"


def create_pg_database(name: str) -> None:
    import psycopg

    from bench.sync_postgres import ADMIN

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')


def drop_pg_database(name: str) -> None:
    import psycopg

    from bench.sync_postgres import ADMIN

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def source_sql(dataset: str) -> str:
    if dataset == "sqlite":
        from bench.sync_full import COLUMNS
    else:
        from bench.sync_postgres import COLUMNS
    return f"SELECT {COLUMNS} FROM src"


def columns_of(dataset: str) -> list[str]:
    return [c.strip() for c in source_sql(dataset)[len("SELECT ") : -len(" FROM src")].split(",")]


def same_as_source(dataset: str, source: str, target: str) -> bool:
    if dataset == "sqlite":
        from bench.sync_full import checksum as sqlite_checksum

        return sqlite_checksum(Path(target), "dst") == sqlite_checksum(Path(source), "src")
    from bench.sync_postgres import checksum as pg_checksum

    return pg_checksum(target, "dst") == pg_checksum(source, "src")


# -- path a: tuples, through the engine's own functions ---------------------------------------
def run_tuples(spec: dict[str, Any], steps: Steps) -> dict[str, Any]:
    import django

    django.setup()
    import zstandard

    from jobs.sync import changelog
    from jobs.sync.changelog import Frame, Header, encode_frame, pickle_rows
    from jobs.sync.stage import batch_digest, batch_keys, xxh3_hashes_of
    from jobs.systems.base import ApplyHooks
    from jobs.systems.db.reader import read_batches
    from jobs.systems.db.url import create_db_engine
    from jobs.systems.db.writer import WriterSettings, apply_frames

    source = create_db_engine("", spec["source_url"])
    target = create_db_engine("", spec["target_url"])
    compress = zstandard.ZstdCompressor(level=changelog.COMPRESSION_LEVEL).compress

    def connect() -> None:
        # The pools keep these connections: the path's own reads and writes reuse them.
        for engine in (source, target):
            engine.connect().close()

    steps.timed("connect", connect)
    log = open(spec["log_path"], "wb")  # noqa: SIM115 - closed below
    started = time.perf_counter()
    batches = timed_iter(
        steps, "read", read_batches(source, spec["sql"], batch_size=spec["batch_rows"])
    )
    first = next(batches)
    positions = [first.index(KEY)]
    types = [c.type for c in first.columns]
    rows_done = 0
    pause = [0.0, 0.0]  # when the last frame was handed to the writer (wall, CPU)

    def hash_and_encode(rows: list[tuple]) -> tuple[Any, Any, bytes]:
        # As detect_full: keys, the frame encoding, rows pickled once, hashed from the pickles.
        keys = batch_keys(rows, positions)
        encoded = encode_frame(rows, types)
        pickled, ends = pickle_rows(encoded[1])
        hashes = xxh3_hashes_of(pickled, ends)
        digest = batch_digest(pickled)
        return keys, (hashes, digest, encoded), pickled

    def frame(rows: list[tuple], encoded: Any, pickled: bytes) -> None:
        # ChangeLogWriter._frame and ._drain, in this thread so the step's time is its own.
        payload = compress(changelog.dumps((encoded[0],)) + pickled)
        log.write(changelog._FRAME.pack(changelog.UPSERT, len(rows), len(payload)))
        log.write(payload)

    def frames() -> Iterator[Frame]:
        nonlocal rows_done
        for batch in _chain(first, batches):
            rows = batch.rows
            _keys, (_hashes, _digest, encoded), pickled = steps.timed(
                "hash_and_key", hash_and_encode, rows
            )
            steps.timed("changelog", frame, rows, encoded, pickled)
            rows_done += len(rows)
            pause[0], pause[1] = time.perf_counter(), time.process_time()
            yield Frame(changelog.UPSERT, rows)
            # Back here once apply_frames has written the frame to the target.
            steps.add("write", time.perf_counter() - pause[0], time.process_time() - pause[1])
        pause[0], pause[1] = time.perf_counter(), time.process_time()

    header = Header(job_key="bench", execution_id="1", columns=first.columns, keys=[KEY])
    settings = WriterSettings(
        target_object="dst",
        writer_guid="bench-batch-types",
        keys=[KEY],
        propagate_delete=True,
        batch_count=spec["batch_rows"],
    )
    # Until the first frame is asked for, apply_frames prepares the table: the writer's time.
    pause[0], pause[1] = time.perf_counter(), time.process_time()
    result = apply_frames(target, header, frames(), "1", settings, ApplyHooks())
    # The transaction's commit (and the table set-up before the first frame) is the writer's.
    steps.add("write", time.perf_counter() - pause[0], time.process_time() - pause[1])
    log.close()
    total = time.perf_counter() - started
    assert result.applied and result.upserts == rows_done, result
    source.dispose()
    target.dispose()
    return {"rows": rows_done, "seconds": round(total, 3)}


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# -- path b: Arrow record batches --------------------------------------------------------------
def _arrow_reader(spec: dict[str, Any], driver: str) -> Any:
    """A RecordBatchReader over the source query, and what keeps it open."""
    if driver == "cx":
        import connectorx as cx

        uri = spec["cx_uri"]
        return cx.read_sql(
            uri, spec["sql"], return_type="arrow_stream", batch_size=spec["batch_rows"]
        ), None
    if spec["dataset"] == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        conn = adbc_sqlite.connect(spec["source_path"])
        cursor = conn.cursor()
        # The driver infers SQLite's column types from the first batch, then keeps them.
        cursor.adbc_statement.set_options(
            **{"adbc.sqlite.query.batch_rows": str(spec["batch_rows"])}
        )
    else:
        import adbc_driver_postgresql.dbapi as adbc_pg

        conn = adbc_pg.connect(spec["source_uri"])
        cursor = conn.cursor()
    cursor.execute(spec["sql"])
    return cursor.fetch_record_batch(), (cursor, conn)


def _typed_schema(schema: Any) -> Any:
    """`schema` with PostgreSQL `numeric` (an opaque string extension in ADBC) as decimal128.

    ADBC's COPY writer cannot send text to a numeric column, polars cannot hash the
    extension type; the precision and scale come from the column's typmod.
    """
    import pyarrow as pa

    fields = []
    for field in schema:
        if isinstance(field.type, pa.OpaqueType) and field.type.type_name == "numeric":
            typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
            if typmod >= 4:
                precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
            else:
                precision, scale = 38, 10
            field = pa.field(field.name, pa.decimal128(precision, scale))
        fields.append(field)
    return pa.schema(fields)


def _typed(batch: Any) -> Any:
    """The batch with PostgreSQL `numeric` as decimal128 (see _typed_schema)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = _typed_schema(batch.schema)
    if schema.types == batch.schema.types:
        return batch
    arrays = [
        pc.cast(array.storage, field.type) if isinstance(array.type, pa.OpaqueType) else array
        for array, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _slices(batch: Any, size: int) -> Iterator[Any]:
    # Drivers size their batches in bytes (ADBC PostgreSQL) or as asked; cut them to the
    # engine's 10,000 rows (zero-copy) so frames and upsert statements match path a.
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def _row_hashes_polars(batch: Any) -> tuple[Any, Any]:
    """(keys, hashes): the key column as it is and polars' 64-bit row hash, as int64 arrays."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc

    hashes = pl.from_arrow(batch).hash_rows(seed=0).to_arrow()
    # SQLite keeps signed 64-bit integers: the same wrap-around as stage._SIGN.
    return batch.column(KEY), pc.cast(hashes, pa.int64(), safe=False)


def _row_hashes_pyarrow(batch: Any) -> list[int]:
    """A pyarrow-only row hash: every column cast to text, joined per row, XXH3 per row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import xxhash

    texts = [pc.cast(column, pa.string()) for column in batch.columns]
    joined = pc.binary_join_element_wise(
        *texts, "\x1f", null_handling="replace", null_replacement="\x00"
    )
    _validity, offsets_buffer, data_buffer = joined.buffers()
    offsets = memoryview(offsets_buffer).cast("i")[joined.offset : joined.offset + len(joined) + 1]
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    xxh = xxhash.xxh3_64_intdigest
    return [xxh(data[offsets[i] : offsets[i + 1]]) for i in range(len(joined))]


class _ArrowTarget:
    """ADBC bulk ingest into the target, in one transaction like the engine's writer."""

    def __init__(self, spec: dict[str, Any], *, append: bool) -> None:
        self.dataset = spec["dataset"]
        self.append = append
        names = columns_of(self.dataset)
        others = [n for n in names if n != KEY]
        self.cols = ", ".join(names)
        if self.dataset == "sqlite":
            import adbc_driver_sqlite.dbapi as adbc_sqlite

            from bench.sync_full import SCHEMA

            self.conn = adbc_sqlite.connect(spec["target_path"])
            stage, create_stage = "temp.dz_stage", None
            excluded = "excluded"
        else:
            import adbc_driver_postgresql.dbapi as adbc_pg

            from bench.sync_postgres import SCHEMA

            self.conn = adbc_pg.connect(spec["target_uri"])
            stage = "dz_stage"
            create_stage = "CREATE TEMP TABLE dz_stage (LIKE dst) ON COMMIT DROP"
            excluded = "EXCLUDED"
        self.cursor = self.conn.cursor()
        self.cursor.execute(SCHEMA.format(name="dst"))
        if create_stage:
            self.cursor.execute(create_stage)
        self.stage = stage
        self.created = create_stage is not None
        # PostgreSQL's binary COPY wants the column types exactly (ConnectorX reads int4 as
        # int64): batches are cast to the target's schema, as a real Arrow writer must.
        self.schema = None
        if self.dataset == "postgres":
            self.cursor.execute(f"SELECT {self.cols} FROM dst LIMIT 0")
            self.schema = _typed_schema(self.cursor.fetch_arrow_table().schema)
        updates = ", ".join(f"{n} = {excluded}.{n}" for n in others)
        self.upsert = (
            f"INSERT INTO dst ({self.cols}) SELECT {self.cols} FROM {stage} "
            f"WHERE true ON CONFLICT ({KEY}) DO UPDATE SET {updates}"
        )
        self.clear = f"DELETE FROM {stage}" if self.dataset == "sqlite" else f"TRUNCATE {stage}"

    def write(self, batch: Any) -> None:
        if self.schema is not None and batch.schema.types != self.schema.types:
            batch = batch.cast(self.schema)
        if self.append:
            self.cursor.adbc_ingest("dst", batch, mode="append")
            return
        mode = "append" if self.created else "create"
        self.cursor.adbc_ingest("dz_stage", batch, mode=mode, temporary=True)
        self.created = True
        self.cursor.execute(self.upsert)
        self.cursor.execute(self.clear)

    def commit(self) -> None:
        self.conn.commit()
        self.cursor.close()
        self.conn.close()


def run_arrow(spec: dict[str, Any], steps: Steps, driver: str, *, append: bool) -> dict[str, Any]:
    import pyarrow as pa

    started = time.perf_counter()
    # Opening the drivers' connections (and loading their libraries) is a cost per run.
    reader, _keep = steps.timed("connect", _arrow_reader, spec, driver)
    target = steps.timed("connect", _ArrowTarget, spec, append=append)
    options = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", 1), use_threads=False)
    sink = pa.OSFile(spec["log_path"], "wb")
    log: Any = None
    rows_done = 0
    for whole in timed_iter(steps, "read", iter(reader)):
        whole = steps.timed("read", _typed, whole)
        for batch in _slices(whole, spec["batch_rows"]):
            steps.timed("hash_and_key", _row_hashes_polars, batch)
            if log is None:
                log = pa.ipc.new_stream(sink, batch.schema, options=options)
            steps.timed("changelog", log.write_batch, batch)
            steps.timed("write", target.write, batch)
            rows_done += batch.num_rows
    if log is not None:
        steps.timed("changelog", log.close)
    sink.close()
    steps.timed("write", target.commit)
    return {"rows": rows_done, "seconds": round(time.perf_counter() - started, 3)}


# -- path c: the boundary ----------------------------------------------------------------------
def to_tuples(batch: Any) -> list[tuple]:
    """An Arrow batch as the engine's rows: the fastest way pyarrow offers (column-wise)."""
    return list(zip(*(column.to_pylist() for column in batch.columns), strict=True))


def to_tuples_polars(batch: Any) -> list[tuple]:
    """The same through polars' `rows()`, which builds dates, decimals and timestamps in Rust
    (pyarrow's `to_pylist` spends microseconds per timestamp with a zone)."""
    import polars as pl

    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame.rows()


def from_tuples(rows: list[tuple], schema: Any) -> Any:
    """Rows (as an HTTP or messaging connector produces them) as an Arrow batch of `schema`."""
    import pyarrow as pa

    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def run_boundary(spec: dict[str, Any], steps: Steps) -> dict[str, Any]:
    import pyarrow as pa

    reader, _keep = _arrow_reader(spec, "adbc")
    rows_done = 0
    equal = True
    started = time.perf_counter()
    for whole in reader:
        for batch in _slices(_typed(whole), spec["batch_rows"]):
            rows = steps.timed("arrow_to_tuples", to_tuples, batch)
            polars_rows = steps.timed("arrow_to_tuples_polars", to_tuples_polars, batch)
            equal = equal and polars_rows == rows
            back = steps.timed("tuples_to_arrow", from_tuples, rows, batch.schema)
            equal = equal and back.equals(batch)
            steps.timed("hash_polars", _row_hashes_polars, batch)
            steps.timed("hash_pyarrow_xxh3", _row_hashes_pyarrow, batch)
            rows_done += batch.num_rows
    seconds = time.perf_counter() - started
    del pa
    # ConnectorX fetches on its own threads while path b works: its read floor alone.
    cx_reader, _ = _arrow_reader(spec, "cx")
    for _batch in timed_iter(steps, "read_only_cx", iter(cx_reader)):
        pass
    pushdown = _pushdown_reads(spec, steps) if spec["dataset"] == "postgres" else None
    return {
        "rows": rows_done,
        "seconds": round(seconds, 3),
        "round_trip_equal": equal,
        "pushdown_rows": pushdown,
    }


def _pushdown_reads(spec: dict[str, Any], steps: Steps) -> int:
    """Issue 20's push-down: the source hashes each row, only (key, digest) cross the wire."""
    import django

    django.setup()
    from jobs.systems.db.reader import read_batches
    from jobs.systems.db.url import create_db_engine

    sql = "SELECT t.id, hashtextextended(t::text, 0) AS h FROM src AS t"
    engine = create_db_engine("", spec["source_url"])
    tuples = 0
    for batch in timed_iter(
        steps, "pushdown_read_tuples", read_batches(engine, sql, batch_size=spec["batch_rows"])
    ):
        tuples += len(batch.rows)
    engine.dispose()
    reader, _keep = _arrow_reader({**spec, "sql": sql}, "adbc")
    arrow = 0
    for batch in timed_iter(steps, "pushdown_read_arrow", iter(reader)):
        arrow += batch.num_rows
    assert tuples == arrow, (tuples, arrow)
    return tuples


# -- the reference loops of sync_full.py and sync_postgres.py -----------------------------------
def run_reference(spec: dict[str, Any], steps: Steps) -> dict[str, Any]:
    started = time.perf_counter()
    if spec["dataset"] == "sqlite":
        from bench.sync_full import baseline

        rows = steps.timed(
            "fetchmany_executemany", baseline, spec["source_path"], spec["target_path"]
        )
    else:
        from bench.sync_postgres import baseline as copy_pipe

        steps.timed("copy_pipe", copy_pipe, spec["source_db"], spec["target_db"])
        rows = spec["rows"]
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 3)}


def _imports(path: str) -> None:
    # Import what a path uses before timing it: a worker has them loaded after its first run.
    modules: list[str] = []
    if path in ("tuples", "boundary"):
        import django

        django.setup()
        modules += ["jobs.sync.detect", "jobs.systems.db.writer"]
    if path.startswith("arrow") or path == "boundary":
        modules += [
            "adbc_driver_postgresql.dbapi",
            "adbc_driver_sqlite.dbapi",
            "connectorx",
            "polars",
            "pyarrow.compute",
            "pyarrow.ipc",
        ]
    for module in modules:
        importlib.import_module(module)


def child(spec: dict[str, Any]) -> None:
    steps = Steps()
    path = spec["path"]
    _imports(path)
    rss_before = peak_rss_mb()
    cpu_started = time.process_time()
    if path == "tuples":
        result = run_tuples(spec, steps)
    elif path == "arrow_adbc":
        result = run_arrow(spec, steps, "adbc", append=False)
    elif path == "arrow_cx":
        result = run_arrow(spec, steps, "cx", append=False)
    elif path == "arrow_adbc_append":
        result = run_arrow(spec, steps, "adbc", append=True)
    elif path == "boundary":
        result = run_boundary(spec, steps)
    else:
        result = run_reference(spec, steps)
    print(
        json.dumps(
            {
                **result,
                # This process's CPU (all its threads): steadier than wall time on a busy
                # machine, but blind to the database server's share of the work.
                "cpu_seconds": round(time.process_time() - cpu_started, 3),
                **steps.report(),
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_imports_mb": rss_before,
            }
        )
    )


# -- the parent: data sets, alternation, report ------------------------------------------------
def run_child(spec: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    return child_result(
        Path(__file__),
        ["child", json.dumps(spec)],
        data_dir,
        what=f"{spec['dataset']}/{spec['path']}",
    )


def _target(dataset: str, folder: Path, label: str) -> dict[str, Any]:
    if dataset == "sqlite":
        path = folder / f"{label}.sqlite3"
        return {
            "target_path": str(path),
            "target_url": f"sqlite:///{path}",
            "target_id": str(path),
        }
    name = f"bench_bt_{label}_{uuid.uuid4().hex[:8]}"
    create_pg_database(name)
    return {
        "target_db": name,
        "target_uri": pg_uri(name),
        "target_url": pg_uri(name),
        "target_id": name,
    }


def _drop_target(dataset: str, target: dict[str, Any]) -> None:
    if dataset == "sqlite":
        Path(target["target_path"]).unlink(missing_ok=True)
    else:
        drop_pg_database(target["target_db"])


def bench_dataset(dataset: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": dataset,
        "rows": args.rows,
        "batch_rows": BATCH_ROWS,
        "sql": source_sql(dataset),
    }
    source_db = None
    if dataset == "sqlite":
        from bench.sync_full import create_source

        source = folder / "source.sqlite3"
        create_source(source, args.rows)
        base.update(
            source_path=str(source),
            source_url=f"sqlite:///{source}",
            cx_uri=f"sqlite://{source}",
            source_id=str(source),
        )
    else:
        from bench.sync_postgres import create_source as create_pg_source

        source_db = f"bench_bt_src_{uuid.uuid4().hex[:8]}"
        create_pg_database(source_db)
        create_pg_source(source_db, args.rows)
        base.update(
            source_db=source_db,
            source_uri=pg_uri(source_db),
            source_url=pg_uri(source_db),
            cx_uri=pg_uri(source_db),
            source_id=source_db,
        )
    paths = [p for p in PATHS[dataset] if not args.paths or p in args.paths]
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    try:
        # The machine is shared: every path runs once per round, in turn, and the best
        # round of each counts, so a burst of load elsewhere does not decide a ratio.
        for attempt in range(args.repeat):
            for path in paths:
                spec = {**base, "path": path, "log_path": str(folder / f"{path}.log")}
                target: dict[str, Any] = {}
                if path not in ("boundary",):
                    target = _target(dataset, folder, f"{path}{attempt}")
                    spec.update(target)
                try:
                    result = run_child({**spec}, folder / f"data-{path}{attempt}")
                    if target:
                        result["target_matches_source"] = same_as_source(
                            dataset, base["source_id"], target["target_id"]
                        )
                    runs[path].append(result)
                finally:
                    if target:
                        _drop_target(dataset, target)
                    Path(spec["log_path"]).unlink(missing_ok=True)
    finally:
        if source_db is not None:
            drop_pg_database(source_db)
    return _summary(dataset, args.rows, runs)


def _summary(dataset: str, rows: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        paths[path] = {
            "seconds": best["seconds"],
            "runs_seconds": [r["seconds"] for r in results],
            "cpu_seconds": min(r["cpu_seconds"] for r in results),
            "runs_cpu_seconds": [r["cpu_seconds"] for r in results],
            **{k: best[k] for k in ("steps_seconds", "steps_cpu_seconds")},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "rss_after_imports_mb": best["rss_after_imports_mb"],
            **{
                k: all(r[k] for r in results)
                for k in ("target_matches_source", "round_trip_equal")
                if k in best
            },
        }
    ratios: dict[str, Any] = {}
    if "tuples" in paths:
        tuples = paths["tuples"]
        for path in ("arrow_adbc", "arrow_cx", "arrow_adbc_append"):
            if path not in paths:
                continue
            arrow = paths[path]
            ratios[f"{path}_over_tuples"] = round(arrow["seconds"] / tuples["seconds"], 2)
            ratios[f"{path}_over_tuples_cpu"] = round(
                arrow["cpu_seconds"] / tuples["cpu_seconds"], 2
            )
            ratios[f"{path}_over_tuples_by_step"] = {
                step: round(arrow["steps_seconds"][step] / seconds, 2)
                for step, seconds in tuples["steps_seconds"].items()
                if seconds and step in arrow["steps_seconds"]
            }
        if "reference" in paths:
            reference = paths["reference"]["seconds"]
            ratios["over_reference"] = {
                path: round(paths[path]["seconds"] / reference, 2)
                for path in paths
                if path not in ("reference", "boundary")
            }
    if "boundary" in paths and "tuples" in paths:
        steps = paths["boundary"]["steps_seconds"]
        read = paths["tuples"]["steps_seconds"]["read"]
        ratios["boundary_round_trip_over_tuples_read"] = round(
            (steps["arrow_to_tuples"] + steps["tuples_to_arrow"]) / read, 2
        )
    return {"rows": rows, "columns": 10, "paths": paths, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=100_000, help="rows of each data set (the benches use 1M)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each path's best counts")
    parser.add_argument(
        "--dataset", choices=["sqlite", "postgres", "both"], default="both", help="which data set"
    )
    parser.add_argument("--paths", nargs="*", help="only these paths (default: all)")
    args = parser.parse_args()
    args.repeat = max(1, args.repeat)
    report: dict[str, Any] = {"benchmark": "batch_types", "rows": args.rows, "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="bench-batch-types-") as tmp:
        folder = Path(tmp)
        if args.dataset in ("sqlite", "both"):
            report["sqlite"] = bench_dataset("sqlite", args, folder)
        if args.dataset in ("postgres", "both"):
            why = postgres_reachable()
            if why is None:
                report["postgres"] = bench_dataset("postgres", args, folder)
            else:
                report["postgres"] = {"skipped": f"PostgreSQL is unreachable: {why}"}
                print(f"PostgreSQL data set skipped: unreachable ({why})", file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(json.loads(sys.argv[2]))
    else:
        main()
