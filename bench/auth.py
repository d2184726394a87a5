"""Authentication costs: a legitimate serverInfo's latency while clients send wrong passwords.

Starts `manage.py run` (the embedded server, waitress) on a throw-away data directory, signs a
real user in once, then measures GET serverInfo (HTTP Basic, the user's login remembered) alone
and while N threads send wrong passwords, from the same address as an attacker on the host
would. Prints JSON: median and p95 in ms for each phase, the attackers' answers by status.

    python bench/auth.py [--root DIR] [--attackers 16] [--seconds 10]

`--root` runs another checkout's code (e.g. the main branch, to compare before and after).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PATH = "/SASDataMgmtRTDataJob/rest/serverInfo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def timed_requests(url: str, headers: dict[str, str], seconds: float) -> list[float]:
    session = requests.Session()
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = session.get(url, headers=headers, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        time.sleep(0.02)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(ROOT))
    parser.add_argument("--attackers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        GATEWAY_DATA_DIR=str(data_dir),
        GATEWAY_PORT=str(port),
        GATEWAY_LOG_LEVEL="ERROR",
        GATEWAY_ADMIN_USER="bench",
        GATEWAY_ADMIN_PASSWORD=password,
    )
    env.pop("DATABASE_URL", None)
    python = sys.executable
    for command in (["migrate", "--noinput"], ["bootstrap"]):
        subprocess.run(
            [python, "manage.py", *command], cwd=root, env=env, check=True, capture_output=True
        )
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen(
        [python, "manage.py", "run"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        good = basic("bench", password)
        quiet = timed_requests(url, good, args.seconds)
        stop = threading.Event()
        answers: Counter[int] = Counter()

        def attack(number: int) -> None:
            session = requests.Session()
            while not stop.is_set():
                wrong = basic("bench" if number % 2 else f"guess{number}", secrets.token_hex(8))
                answers[session.get(url, headers=wrong, timeout=120).status_code] += 1

        threads = [threading.Thread(target=attack, args=(n,)) for n in range(args.attackers)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        loud = timed_requests(url, good, args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(
        json.dumps(
            {
                "root": str(root),
                "attackers": args.attackers,
                "alone": summary(quiet),
                "under_attack": summary(loud),
                "attacker_answers": dict(sorted(answers.items())),
            }
        )
    )


if __name__ == "__main__":
    main()
