"""Connection strings → SQLAlchemy URLs: URLs, the vendor's ADO.NET style, stored keys."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from jobs.connections import database_engine
from jobs.guard import ConnectionRefused
from jobs.models import ConnectionString
from jobs.systems.db.url import (
    ConnectionStringError,
    create_db_engine,
    parse_ado,
    to_url,
)


def test_ado_style_with_host_comma_port_is_postgresql_for_a_postgresql_key() -> None:
    # when
    url = to_url(
        "PostgreSQL",
        "Data Source=db.example,6543;User Id=sa;Password=p;w=d;Initial Catalog=sales",
    )
    # then
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.username, url.database) == ("db.example", 6543, "sa", "sales")


def test_ado_values_may_be_quoted() -> None:
    assert parse_ado('Server=\'a;b\';Password="x""y";Database={c;d}') == {
        "server": "a;b",
        "password": 'x"y',
        "database": "c;d",
    }


def test_ado_system_comes_from_the_default_port_when_not_stored() -> None:
    url = to_url("", "Server=127.0.0.1,3306;Uid=root;Pwd=;Database=shop")
    assert url.drivername == "mysql+pymysql"
    assert url.query["charset"] == "utf8mb4"


def test_ado_sqlite_file() -> None:
    url = to_url("SQLite", "Data Source=/srv/data/films.db")
    assert (url.drivername, url.database) == ("sqlite", "/srv/data/films.db")


def test_bare_urls_get_the_installed_drivers() -> None:
    assert to_url("", "postgres://u@h/d").drivername == "postgresql+psycopg"
    assert to_url("", "mysql://u@h/d").drivername == "mysql+pymysql"
    assert to_url("", "mariadb://u@h/d").drivername == "mysql+pymysql"


@pytest.mark.parametrize(
    ("system", "value", "message"),
    [
        ("", "Server=somewhere;User Id=sa", "Cannot tell which database system"),
        ("DB2", "Server=x,50000", "'DB2' is not supported"),
        ("", "oracle://u@h/d", "'oracle' is not supported"),
        ("", "   ", "empty"),
        ("PostgreSQL", "Server=h,notaport", "not a port number"),
    ],
)
def test_connection_strings_that_cannot_work_are_refused_clearly(
    system: str, value: str, message: str
) -> None:
    with pytest.raises(ConnectionStringError, match=message):
        to_url(system, value)


@pytest.mark.django_db
def test_the_gateways_own_database_cannot_be_read() -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip(
            "the gateway's database is a server here (DATABASE_URL): "
            "test_security_connections.py names that one"
        )
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        to_url("", f"sqlite:///{connection.settings_dict['NAME']}")


@pytest.mark.django_db
def test_a_stored_key_is_decrypted_and_its_system_decides(postgres_url: str) -> None:
    # given
    from sqlalchemy import make_url

    url = make_url(postgres_url)
    stored = ConnectionString(key="pg-main", system="PostgreSQL", connection_type="DB")
    stored.value = (
        f"Data Source={url.host},{url.port};User Id={url.username};Initial Catalog={url.database}"
    )
    stored.save()
    # when
    engine = database_engine("pg-main")
    # then
    with engine.connect() as connection:
        assert connection.execute(text("SELECT current_database()")).scalar() == url.database
    engine.dispose()


def test_engines_are_cached_per_url(sqlite_url: str) -> None:
    assert create_db_engine("", sqlite_url) is create_db_engine("SQLite", sqlite_url)
