"""SQL databases (SQLite, PostgreSQL, MySQL/MariaDB) through SQLAlchemy Core."""
