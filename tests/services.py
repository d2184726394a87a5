"""Real services for tests: reachable → used for real; unreachable → skip, or fail under CI=true."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ.get("TEST_POSTGRES_USER", "postgres")
MARIADB_HOST = os.environ.get("TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("TEST_MARIADB_USER", "root")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when `name` does not answer on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        reason = f"{name} is not reachable on {host}:{port} ({exc})"
    if in_ci():
        pytest.fail(f"{reason}; under CI=true an unreachable service is a failure", pytrace=False)
    pytest.skip(reason)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    import psycopg

    name = unique_name("gwtest")
    admin = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def mariadb_database() -> Iterator[str]:
    """A fresh MariaDB database; yields its SQLAlchemy URL and drops it afterwards."""
    require("MariaDB", MARIADB_HOST, MARIADB_PORT)
    import pymysql

    name = unique_name("gwtest")
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"mysql+pymysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def redis_url(db: int = 0) -> str:
    require("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
MQTT_HOST = os.environ.get("TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("TEST_MQTT_PORT", "1883"))
NATS_HOST = os.environ.get("TEST_NATS_HOST", "127.0.0.1")
NATS_PORT = int(os.environ.get("TEST_NATS_PORT", "4222"))


def messaging_connection_value(service: str, name: str) -> dict[str, object]:
    """A messaging connection for `service` on a queue/topic/subject/stream of its own
    (skips, or fails under CI=true, when the broker is unreachable)."""
    if service == "rabbitmq":
        require("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
        return {
            "service": "rabbitmq",
            "host": RABBITMQ_HOST,
            "port": RABBITMQ_PORT,
            "username": "guest",
            "password": "guest",
            "queue": name,
        }
    if service == "mqtt":
        require("Mosquitto", MQTT_HOST, MQTT_PORT)
        return {"service": "mqtt", "host": MQTT_HOST, "port": MQTT_PORT, "topic": name, "qos": 1}
    if service == "nats":
        require("NATS", NATS_HOST, NATS_PORT)
        return {
            "service": "nats",
            "servers": [f"nats://{NATS_HOST}:{NATS_PORT}"],
            "subject": name,
            "stream": name,
            "durable": name,
        }
    if service == "redis":
        require("Redis", REDIS_HOST, REDIS_PORT)
        # DB 5 is this suite's own for messaging (shared Redis on the machine).
        return {
            "service": "redis",
            "url": f"redis://{REDIS_HOST}:{REDIS_PORT}/5",
            "stream": name,
            "group": name,
        }
    raise ValueError(service)
