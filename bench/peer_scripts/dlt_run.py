"""One dlt run for bench/peers.py, executed by the python of dlt's own virtual environment.

Kept apart from bench/peers.py (and out of `make bench`, which runs bench/*.py): that venv
has dlt, ConnectorX and the ADBC driver but not the gateway's dependencies. dlt's fast
setting (issue 20's notes): ConnectorX reading `arrow_stream` batches, Parquet load files,
which dlt's postgres destination copies in with `adbc-driver-postgresql`. Write disposition
merge on the primary key, so a re-run upserts.

Usage: python dlt_run.py SOURCE_URL TARGET_URL PIPELINES_DIR DATASET
"""

from __future__ import annotations

import sys

import dlt
from dlt.sources.sql_database import sql_table


def main(source_url: str, target_url: str, pipelines_dir: str, dataset: str) -> None:
    table = sql_table(
        credentials=source_url,
        table="src",
        backend="connectorx",
        backend_kwargs={"return_type": "arrow_stream"},
        chunk_size=100_000,
    )
    table.apply_hints(primary_key="id", write_disposition="merge")
    pipeline = dlt.pipeline(
        pipeline_name="peers",
        destination=dlt.destinations.postgres(target_url),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(table, loader_file_format="parquet")


if __name__ == "__main__":
    main(*sys.argv[1:5])
