"""bench/peers.py on a tiny table, without the peers: every tool lands the source's rows.

The peer table in docs/decisions.md comes from this benchmark; a reference or gateway run that
wrote the wrong rows, or a comparison that saw nothing, would make its figures meaningless.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.peers import Tool, install, table
from tests.services import POSTGRES_HOST, POSTGRES_PORT, require

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "peers.py"


def test_references_and_gateway_match_the_source_and_say_who_propagates_deletes() -> None:
    # given
    require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    # when
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "3000", "--runs", "1", "--no-peers", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # then
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    tools = report["tools"]
    assert set(tools) == {"copy_pipe", "psycopg_copy", "gateway", "upsert_loop"}
    if shutil.which("psql") is None:
        # The pipe needs psql's two ends; without it the tool is reported failed, not skipped.
        assert "exit 127" in tools.pop("copy_pipe")["errors"][0]
    for name, tool in tools.items():
        assert tool["errors"] == [], name
        assert tool["full_matches"] is True, name
        assert tool["full_seconds"][0] > 0 and tool["peak_rss_mb"] > 0, name
        rerun = tool["runs"][0]["rerun"]
        assert rerun["changes"] == {"updated": 30, "deleted": 3, "inserted": 3}
    # A reload and the gateway's synthetic detection remove deleted rows; an upsert loop cannot.
    for name in ("psycopg_copy", "gateway"):
        assert tools[name]["rerun_matches"] is True, name
        assert tools[name]["deletes_propagated"] is True, name
    loop = tools["upsert_loop"]["runs"][0]["rerun"]["compare"]
    assert (loop["missing"], loop["different"], loop["extra"]) == (0, 0, 3)
    assert tools["upsert_loop"]["deletes_propagated"] is False


def test_a_peer_that_cannot_install_is_reported_with_pips_last_line(tmp_path: Path) -> None:
    # given: a requirement pip refuses before asking any index
    tool = Tool("broken", "a broken peer", "dst", lambda ctx: {}, ["not a requirement!!"])
    # when
    venv, error = install(tool, tmp_path)
    # then
    assert venv is None
    assert "Invalid requirement" in error
    report = {
        "rows": 10,
        "runs": 1,
        "changes": "nothing",
        "load_average": [1.0],
        "load_average_end": [1.0],
        "tools": {"broken": {"label": tool.label, "not_installed": error}},
    }
    assert f"| a broken peer | not installed: {error} |" in table(report)
