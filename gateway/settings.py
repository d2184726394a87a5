"""Gateway settings, read from the environment through django-environ.

Every variable is listed in docs/configuration.md. The defaults make `make run`
work on a fresh machine: SQLite and the in-memory Celery transport under
GATEWAY_DATA_DIR, secrets generated once into that directory.
"""

import contextlib
import os
from pathlib import Path

import environ

from gateway.secrets import load_or_create_secret

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

# Arrow's buffers come from jemalloc rather than pyarrow's default mimalloc, which keeps freed
# segments (in huge pages) resident while the engine streams a batch at a time; not from glibc's
# malloc ("system") either, whose pages returned after each batch are faulted in again for the
# next (docs/decisions.md, "Drive systems, fourth pass"). pyarrow reads the variable when it
# loads, after these settings; an operator's own value is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

DATA_DIR = Path(env.str("GATEWAY_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
# Owner-only: it holds the database, the secrets and every job's change logs. An existing
# folder keeps the mode its operator gave it.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

GATEWAY_HOST = env.str("GATEWAY_HOST", default="127.0.0.1")
GATEWAY_PORT = env.int("GATEWAY_PORT", default=9559)
GATEWAY_THREADS = env.int("GATEWAY_THREADS", default=16)
GATEWAY_EMBEDDED_CONCURRENCY = env.int("GATEWAY_EMBEDDED_CONCURRENCY", default=4)
GATEWAY_VERSION = "1.0.0"

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or load_or_create_secret(
    DATA_DIR / "django-secret.key", kind="django"
)
# Fernet keys for connection strings: the first encrypts, all of them decrypt (rotation).
GATEWAY_FERNET_KEYS: list[str] = env.list("GATEWAY_FERNET_KEYS", default=[]) or [
    load_or_create_secret(DATA_DIR / "fernet.key", kind="fernet")
]

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The fleet (a DATABASE_URL) answers only to names an operator lists; the embedded gateway on
# one machine answers to any, as DataZen's agent does.
_FLEET = bool(env.str("DATABASE_URL", default=""))
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if _FLEET else ["*"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# TLS (docs/security.md): the gateway speaks plain HTTP; TLS is terminated by a proxy in front.
# Behind one, DJANGO_SECURE_PROXY_SSL_HEADER=true trusts its X-Forwarded-Proto (only when the
# proxy sets or strips that header on every request).
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # gateway first: its generateschema replaces rest_framework's (the vendor documents).
    "gateway",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "jobs",
    "datazen",
    "dataflux",
]

MIDDLEWARE = [
    # First, so they see every answer, the other middleware's refusals included.
    "gateway.access_log.AccessLogMiddleware",
    "gateway.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "gateway.limits.RequestLimitsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "gateway.wsgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'gateway.sqlite3'}")
}
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
# Every thread keeps its database connection between requests and tasks, SQLite's too: opening
# one costs SQLite about 0.45 ms of CPU (the PRAGMAs, Django's function registrations), more
# than a trivial request's own work (docs/decisions.md).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if _SQLITE:
    # Created owner-only before SQLite creates it with the umask's mode; its -wal and -shm
    # files take the database file's mode.
    _DB_FILE = Path(str(DATABASES["default"]["NAME"]))
    if str(_DB_FILE) != ":memory:" and not _DB_FILE.exists() and _DB_FILE.parent.is_dir():
        # Another process of the gateway may make it first.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(_DB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # Web threads, the embedded worker and the scheduler share one file: WAL lets readers
    # run beside a writer, IMMEDIATE transactions take the write lock up front instead of
    # failing on upgrade, and the timeout waits for it.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # MariaDB/MySQL through PyMySQL (already a dependency for jobs' connections), standing in
    # for mysqlclient, which needs a C compiler and the client library to install.
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("charset", "utf8mb4")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("GATEWAY_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# The admin's CSS and scripts are served by the gateway itself (no separate web server):
# from the apps' folders, so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI documents of the vendor APIs (gateway/openapi.py); Swagger UI and ReDoc are served from
# the sidecar package's static files, so the pages work without internet access.
SPECTACULAR_SETTINGS: dict[str, object] = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["gateway.openapi.drop_aliases"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.openapi.add_components",
    ],
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
}

# Celery: the embedded default runs a worker thread on the in-memory transport; the fleet
# sets CELERY_BROKER_URL (Redis) and CELERY_RESULT_BACKEND.
# "localhost": without a host kombu warns that it is "reverting to default localhost".
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://localhost/")
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport without a new client object per message (gateway/broker.py).
    CELERY_BROKER_TRANSPORT = "gateway.broker:Transport"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="cache+memory://")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="gateway")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message whose worker died before acknowledging it (a run it had received but not claimed)
# comes back after the visibility timeout; every worker sweeps for such messages every few
# seconds (kombu's default sweep was every 100 s). A task still running past the timeout is
# delivered again too, and that delivery does nothing: the run's claim is held by a live lease
# (jobs/leases.py), so a short timeout costs one no-op task per timeout per long run.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=60),
    "unacked_restore_interval": env.int("CELERY_RESTORE_INTERVAL", default=5),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task modules beyond jobs.tasks: DataFlux real-time runs on the fleet.
CELERY_IMPORTS = ["jobs.flows.runtime.fleet"]
# Celery's Django fix-up closes the task thread's database connections around every task
# unless this is set: a new PostgreSQL connection per task cost a real-time flow run more than
# the run. With it set they are reused (CONN_MAX_AGE and the health check still apply) and
# closed after every CELERY_DB_REUSE_MAX tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# DataFlux real-time flows (docs/dataflux.md). Engines are capped per flow and in total per
# engine host (the gateway process when embedded, each Celery worker process on the fleet).
DATAFLUX_ENGINES_PER_FLOW = env.int("DATAFLUX_ENGINES_PER_FLOW", default=4)
DATAFLUX_ENGINES_MAX = env.int("DATAFLUX_ENGINES_MAX", default=16)
DATAFLUX_QUEUE_SIZE = env.int("DATAFLUX_QUEUE_SIZE", default=64)
DATAFLUX_QUEUE_WAIT_SECONDS = env.float("DATAFLUX_QUEUE_WAIT_SECONDS", default=30.0)
DATAFLUX_MAX_RUN_SECONDS = env.float("DATAFLUX_MAX_RUN_SECONDS", default=300.0)
DATAFLUX_MAX_CONTENT_BYTES = env.int("DATAFLUX_MAX_CONTENT_BYTES", default=4 * 1024 * 1024)
DATAFLUX_PRELOAD = env.list("DATAFLUX_PRELOAD", default=[])
DATAFLUX_ETAG = env.bool("DATAFLUX_ETAG", default=False)
DATAFLUX_ETAG_SECONDS = env.int("DATAFLUX_ETAG_SECONDS", default=30 * 60)
DATAFLUX_AUTH_CACHE_SECONDS = env.int("DATAFLUX_AUTH_CACHE_SECONDS", default=60)
DATAFLUX_QUEUE = env.str("DATAFLUX_QUEUE", default="flows")
# Real-time runs are written by a process of their own (jobs/flows/runtime/recorder.py).
GATEWAY_RECORDER_PROCESS = env.bool("GATEWAY_RECORDER_PROCESS", default=True)
GATEWAY_EXTRA_QUEUES = [DATAFLUX_QUEUE]

# Scheduler (docs/schedules.md): how often it looks for due jobs, and how long a leader's
# lease lasts without renewal before another scheduler process may take over.
GATEWAY_SCHEDULER_INTERVAL = env.float("GATEWAY_SCHEDULER_INTERVAL", default=1.0)
GATEWAY_SCHEDULER_LEASE_SECONDS = env.float("GATEWAY_SCHEDULER_LEASE_SECONDS", default=15.0)
# A running execution's lease (jobs/leases.py): renewed every third of it while it runs; a run
# whose worker died is resumed once it has expired (docs/operations.md).
GATEWAY_EXECUTION_LEASE_SECONDS = env.float("GATEWAY_EXECUTION_LEASE_SECONDS", default=30.0)
# Longest chain of jobs started by triggers (A triggers B triggers C …) before one is refused.
GATEWAY_TRIGGER_MAX_DEPTH = env.int("GATEWAY_TRIGGER_MAX_DEPTH", default=20)

# Security (docs/security.md). Full connection strings inside jobs (the vendor's dynamic jobs
# allow them) are refused unless the operator turns them on; they then pass the same guard.
GATEWAY_INLINE_CONNECTIONS = env.bool("GATEWAY_INLINE_CONNECTIONS", default=False)
# Request bodies over these are refused with 413 before they are read: DataZen definitions are
# a few kB; DataFlux bodies carry execute rows and base64 flow XML (DATAFLUX_MAX_CONTENT_BYTES).
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=2 * 1024 * 1024)
GATEWAY_MAX_DATAFLUX_BODY_BYTES = env.int(
    "GATEWAY_MAX_DATAFLUX_BODY_BYTES", default=64 * 1024 * 1024
)
GATEWAY_MAX_JSON_DEPTH = env.int("GATEWAY_MAX_JSON_DEPTH", default=32)
GATEWAY_MAX_JSON_INT_DIGITS = env.int("GATEWAY_MAX_JSON_INT_DIGITS", default=40)
# Failed sign-ins (gateway/throttle.py): per user name and per client address in a window, and
# how many password hashes may run at once in a process.
GATEWAY_AUTH_FAILURE_WINDOW = env.float("GATEWAY_AUTH_FAILURE_WINDOW", default=300.0)
GATEWAY_AUTH_MAX_FAILURES = env.int("GATEWAY_AUTH_MAX_FAILURES", default=10)
GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS = env.int("GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS", default=30)
GATEWAY_AUTH_HASH_CONCURRENCY = env.int("GATEWAY_AUTH_HASH_CONCURRENCY", default=2)
GATEWAY_AUTH_HASH_WAIT_SECONDS = env.float("GATEWAY_AUTH_HASH_WAIT_SECONDS", default=10.0)
# The console's forms: Django reads them into memory, so they get the DataZen bound too.
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_BODY_BYTES

# Health and metrics (docs/operations.md): whether they need an access key, how long a check may
# wait for the broker or a worker, and the free space below which the data directory is unhealthy.
GATEWAY_HEALTH_REQUIRES_KEY = env.bool("GATEWAY_HEALTH_REQUIRES_KEY", default=False)
GATEWAY_METRICS_REQUIRES_KEY = env.bool("GATEWAY_METRICS_REQUIRES_KEY", default=False)
GATEWAY_HEALTH_TIMEOUT = env.float("GATEWAY_HEALTH_TIMEOUT", default=2.0)
GATEWAY_HEALTH_MIN_FREE_MB = env.int("GATEWAY_HEALTH_MIN_FREE_MB", default=500)

# Logs: plain lines for people, or one JSON object per line for log shippers. Access lines come
# from gateway.access_log (logger "gateway.access"; GATEWAY_ACCESS_LOG=false turns them off).
GATEWAY_LOG_FORMAT = env.str("GATEWAY_LOG_FORMAT", default="plain")
if GATEWAY_LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"GATEWAY_LOG_FORMAT must be plain or json, not {GATEWAY_LOG_FORMAT!r}")
# Drive systems (jobs/systems/drive): local folders a drive connection may name lie under this
# root (default <data dir>/drive); XML files are parsed whole, up to this size.
GATEWAY_DRIVE_ROOT = env.str("GATEWAY_DRIVE_ROOT", default="")
GATEWAY_DRIVE_XML_MAX_BYTES = env.int("GATEWAY_DRIVE_XML_MAX_BYTES", default=256 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "gateway.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": GATEWAY_LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env.str("GATEWAY_LOG_LEVEL", default="INFO")},
    "loggers": {
        "gateway.access": {
            "level": "INFO" if env.bool("GATEWAY_ACCESS_LOG", default=True) else "WARNING",
        },
        # Its "Not Found: /path" warnings repeat what the access line says.
        "django.request": {"level": "ERROR"},
        # pika logs every socket step of every connection at INFO; its warnings are enough.
        "pika": {"level": "WARNING"},
    },
}
