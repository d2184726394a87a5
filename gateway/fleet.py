"""The fleet's process commands, in one place: `python -m gateway.fleet PROCESS`.

The Makefile's fleet targets, docker-compose.yml, the Dockerfile, docs/operations.md and the
fleet tests all start processes through this module, so a flag added here (the worker's
`-Q gateway,flows`, its node name) reaches every one of them. Settings come from the
environment, read here without loading Django (the launcher then execs the real process).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

PROCESSES = ("migrate", "web", "worker", "scheduler")


def worker_node_name(env: Mapping[str, str], pid: int | None = None) -> str:
    """A node name unique per worker process, even for two workers on one host.

    Celery's default (`celery@HOST`) is the same for every worker of a host, so Flower and
    Celery events merge them; the pid tells them apart (the launcher execs, keeping its pid).
    """
    if env.get("GATEWAY_WORKER_NAME"):
        return env["GATEWAY_WORKER_NAME"]
    return f"gateway-{pid if pid is not None else os.getpid()}@{socket.gethostname()}"


def worker_queues(env: Mapping[str, str]) -> str:
    # The jobs' queue and the real-time flows' queue: a worker without the second leaves
    # every fleet DataFlux run unanswered (settings CELERY_TASK_DEFAULT_QUEUE, DATAFLUX_QUEUE).
    queues = [
        env.get("CELERY_TASK_DEFAULT_QUEUE") or "gateway",
        env.get("DATAFLUX_QUEUE") or "flows",
    ]
    return ",".join(dict.fromkeys(queues))


def commands(name: str, env: Mapping[str, str], pid: int | None = None) -> list[list[str]]:
    """The argv list(s) that process `name` runs, in order (only `migrate` has two steps)."""
    if name == "migrate":
        # Once per deployment: migrations, then a new boot (dynamic jobs of the last one go)
        # and, on the first deployment, the first access key and admin user.
        return [
            ["python", "manage.py", "migrate", "--noinput"],
            ["python", "manage.py", "bootstrap"],
        ]
    if name == "web":
        host = env.get("GATEWAY_HOST") or "127.0.0.1"
        port = env.get("GATEWAY_PORT") or "9559"
        workers = env.get("GATEWAY_WEB_WORKERS") or "2"
        threads = env.get("GATEWAY_WEB_THREADS") or "8"
        return [
            [
                "gunicorn",
                "gateway.wsgi",
                "--bind",
                f"{host}:{port}",
                "--workers",
                workers,
                "--threads",
                threads,
            ]
        ]
    if name == "worker":
        return [
            [
                "celery",
                "-A",
                "gateway",
                "worker",
                "--loglevel",
                "INFO",
                "-Q",
                worker_queues(env),
                "-n",
                worker_node_name(env, pid),
            ]
        ]
    if name == "scheduler":
        return [["python", "manage.py", "runscheduler"]]
    raise ValueError(f"Unknown fleet process {name!r}; one of: {', '.join(PROCESSES)}.")


def prepare_metrics_folder(env: MutableMapping[str, str]) -> str:
    """The folder where the web workers write their request counters, emptied for this start.

    gunicorn's workers are separate processes: each counts the requests it answers, and a
    scrape reaches one of them. In prometheus-client's multi-process mode each writes its
    counters to a file in PROMETHEUS_MULTIPROC_DIR and /metrics adds them all up. A folder the
    operator set is emptied (counters start again at a start, which Prometheus reads as a
    reset); otherwise a fresh one is made.
    """
    folder = env.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="gateway-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def executable(program: str) -> str:
    """`python`, `gunicorn` and `celery` from this interpreter's environment (the venv)."""
    if program == "python":
        return sys.executable
    beside = Path(sys.executable).parent / program
    if beside.exists():
        return str(beside)
    return shutil.which(program) or program


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in PROCESSES:
        print(f"usage: python -m gateway.fleet {{{'|'.join(PROCESSES)}}} [extra args]")
        return 2
    name, extra = argv[0], list(argv[1:])
    steps = commands(name, os.environ)
    steps[-1] = steps[-1] + extra
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)  # manage.py lives at the project's root
    for step in steps[:-1]:
        result = subprocess.run([executable(step[0]), *step[1:]], check=False)
        if result.returncode != 0:
            return result.returncode
    last = steps[-1]
    if name == "web":
        prepare_metrics_folder(os.environ)
    # exec, not a child: signals (SIGTERM from compose, Ctrl-C) reach the real process, and
    # the worker's pid in its node name stays true.
    os.execv(executable(last[0]), [executable(last[0]), *last[1:]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
