"""Start gateway processes (web, workers, scheduler) as a user would, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # The test run's own database (DATABASE_URL) is not the started process's: it gets its own
    # in `data_dir` unless a test passes one.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_")) and k != "DATABASE_URL"
    }
    env.update({"DJANGO_SETTINGS_MODULE": "gateway.settings", "GATEWAY_DATA_DIR": str(data_dir)})
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A background process whose output goes to `log`; stopped with SIGTERM at the end."""
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def fleet_command(name: str, *extra: str) -> list[str]:
    """Process `name` started as the Makefile and docker-compose.yml start it (gateway/fleet.py,
    which execs the real command), with `extra` arguments appended; settings come from the
    environment given to `started`."""
    return [sys.executable, "-m", "gateway.fleet", name, *extra]


def celery_worker(queue: str, name: str, loglevel: str = "INFO") -> list[str]:
    """A fleet worker with a threads pool (so its pid runs the tasks) on `queue` only.

    gateway/fleet.py's command with test-only extras: Celery keeps the last `-Q`/`-n` given.
    """
    return fleet_command(
        "worker",
        "-Q",
        queue,
        "-n",
        name,
        "--pool",
        "threads",
        "-c",
        "2",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    )


def gunicorn(port: int) -> list[str]:
    """The fleet's web server, as docker-compose.yml runs it, bound to loopback on `port`.

    Through env(1), which execs too, because gunicorn binds every `--bind` it is given.
    """
    return ["env", "GATEWAY_HOST=127.0.0.1", f"GATEWAY_PORT={port}", *fleet_command("web")]
