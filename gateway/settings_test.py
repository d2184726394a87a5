"""Settings for the test suite: a throw-away data directory and a file SQLite database."""

import atexit
import os
import shutil
import tempfile

if "GATEWAY_DATA_DIR" not in os.environ:
    _data_dir = tempfile.mkdtemp(prefix="gateway-test-")
    os.environ["GATEWAY_DATA_DIR"] = _data_dir
    atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")

from gateway.settings import *  # noqa: F403
from gateway.settings import DATA_DIR, DATABASES

# Threads (the embedded worker in tests) must see the same test database: a file, not :memory:.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# The sync suites define their jobs with full connection strings to throw-away databases; the
# security tests turn this off again where they test the default (GATEWAY_INLINE_CONNECTIONS).
GATEWAY_INLINE_CONNECTIONS = os.environ.get("GATEWAY_INLINE_CONNECTIONS", "true") == "true"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
