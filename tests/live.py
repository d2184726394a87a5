"""A live embedded gateway (`manage.py run`) for tests that talk HTTP to it as a client would."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port, gateway_env, manage, started, wait_for_http

ADMIN_USER = "ops"
ADMIN_PASSWORD = "ops-live-secret"


@dataclass
class LiveGateway:
    base: str
    key: str
    env: dict[str, str]
    log: Path

    @property
    def dataflux(self) -> str:
        return f"{self.base}/SASDataMgmtRTDataJob/rest"


@contextmanager
def live_gateway(folder: Path, **settings: str) -> Iterator[LiveGateway]:
    """Migrated, with an all-scope key and a superuser, served on a free port; stopped after."""
    env = gateway_env(
        folder / "var",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        GATEWAY_RECORDER_PROCESS="0",
        **settings,
    )
    manage(env, "migrate", "--noinput")
    manage(env, "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "o@x.org")
    key = manage(env, "createaccesskey", "live", "--can-decrypt").strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "gateway.log"
    with started([sys.executable, "manage.py", "run", "--port", str(port)], env, log):
        wait_for_http(f"{base}/admin/login/")
        yield LiveGateway(base=base, key=key, env=env, log=log)
