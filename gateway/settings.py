"""Gateway settings, read from the environment through django-environ.

Every variable is listed in docs/configuration.md. The defaults make `make run`
work on a fresh machine: SQLite and the in-memory Celery transport under
GATEWAY_DATA_DIR, secrets generated once into that directory.
"""

from pathlib import Path

import environ

from gateway.secrets import load_or_create_secret

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DATA_DIR = Path(env.str("GATEWAY_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

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
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "gateway",
    "jobs",
    "datazen",
    "dataflux",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
    # Web threads, the embedded worker and the scheduler share one file: WAL lets readers
    # run beside a writer, IMMEDIATE transactions take the write lock up front instead of
    # failing on upgrade, and the timeout waits for it.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

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
# Longer than the longest job, so Redis does not redeliver a task that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=12 * 3600)
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task modules beyond jobs.tasks: DataFlux real-time runs on the fleet.
CELERY_IMPORTS = ["jobs.flows.fleet"]
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
# Real-time runs are written by a process of their own (jobs/flows/recorder.py).
GATEWAY_RECORDER_PROCESS = env.bool("GATEWAY_RECORDER_PROCESS", default=True)
GATEWAY_EXTRA_QUEUES = [DATAFLUX_QUEUE]

# Scheduler (docs/schedules.md): how often it looks for due jobs, and how long a leader's
# lease lasts without renewal before another scheduler process may take over.
GATEWAY_SCHEDULER_INTERVAL = env.float("GATEWAY_SCHEDULER_INTERVAL", default=1.0)
GATEWAY_SCHEDULER_LEASE_SECONDS = env.float("GATEWAY_SCHEDULER_LEASE_SECONDS", default=15.0)
# Longest chain of jobs started by triggers (A triggers B triggers C …) before one is refused.
GATEWAY_TRIGGER_MAX_DEPTH = env.int("GATEWAY_TRIGGER_MAX_DEPTH", default=20)

# Drive systems (jobs/systems/drive): local folders a drive connection may name lie under this
# root (default <data dir>/drive); XML files are parsed whole, up to this size.
GATEWAY_DRIVE_ROOT = env.str("GATEWAY_DRIVE_ROOT", default="")
GATEWAY_DRIVE_XML_MAX_BYTES = env.int("GATEWAY_DRIVE_XML_MAX_BYTES", default=256 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("GATEWAY_LOG_LEVEL", default="INFO")},
}
