"""docs/tutorial.md, then docs/dataflux.md's curl examples, run: every `bash` block in order
against a live gateway, every `output` block checked against what the block before it printed.

Two things are adapted, and only these: the gateway's address (`http://127.0.0.1:9559`, a free
port here) and `.venv/bin/python` (the interpreter running the suite). The blocks run in one
bash session, so variables set in one block are there in the next, as in a reader's terminal.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services
from tests.live import live_gateway
from tests.processes import ROOT

pytestmark = pytest.mark.slow

TUTORIAL = ROOT / "docs" / "tutorial.md"
# Run after the tutorial, whose user and gateway they use.
DOCUMENTS = (TUTORIAL, ROOT / "docs" / "dataflux.md")
DEFAULT_ADDRESS = "http://127.0.0.1:9559"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
MARK = "@@tutorial-block-{}@@"


def blocks(document: Path = TUTORIAL) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(document.read_text())]


def steps() -> list[tuple[str, list[str]]]:
    """(bash code, the lines its output must contain) for each bash block."""
    found: list[tuple[str, list[str]]] = []
    for kind, body in (block for document in DOCUMENTS for block in blocks(document)):
        if kind == "bash":
            found.append((body, []))
        elif kind == "output":
            assert found, "an output block before any bash block"
            found[-1][1].extend(line.strip() for line in body.splitlines() if line.strip())
    return found


def test_the_tutorial_starts_with_make_run_and_shows_outputs() -> None:
    kinds = [kind for kind, _ in blocks()]
    assert kinds[0] == "text" and blocks()[0][1].strip() == "make run"
    assert kinds.count("bash") >= 10 and kinds.count("output") >= 10


def test_every_command_of_the_tutorial_works(tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "base64") if shutil.which(tool) is None]
    if missing:
        reason = f"the tutorial's commands need {', '.join(missing)}, not on PATH"
        if services.in_ci():
            pytest.fail(f"{reason}; under CI=true that is a failure", pytrace=False)
        pytest.skip(reason)
    with live_gateway(tmp_path) as gateway:
        script = ["set -euo pipefail"]
        for number, (code, _) in enumerate(steps()):
            code = code.replace(DEFAULT_ADDRESS, gateway.base)
            code = code.replace(".venv/bin/python", sys.executable)
            script += [f"echo {MARK.format(number)}", code]
        run = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=ROOT,
            env=gateway.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    outputs = re.split(r"@@tutorial-block-\d+@@\n", run.stdout)[1:]
    failed_at = len(outputs) - 1
    assert run.returncode == 0, (
        f"block {failed_at} failed:\n{steps()[failed_at][0]}\n--- output:\n{outputs[-1]}"
        f"\n--- stderr:\n{run.stderr[-3000:]}"
    )
    for number, ((code, expected), printed) in enumerate(zip(steps(), outputs, strict=True)):
        for line in expected:
            assert line in printed, f"block {number}:\n{code}\nprinted:\n{printed}\nlacks {line!r}"
