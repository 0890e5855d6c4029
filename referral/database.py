"""The app's database: Flask-SQLAlchemy and Alembic migrations bound to the app, and
SQLite tuned for a directory that is read while clinics write.

The tuning is attached to the app's own engines, never to SQLAlchemy's ``Engine``
class, so engines made elsewhere in the same process (a script's, a test's, another
app's) stay as they are.
"""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import event

from .extensions import db, migrate

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def init_app(app: Flask) -> None:
    """Bind the database and migrations to ``app``; tune its SQLite engines.

    Flask-SQLAlchemy creates the engines here without connecting: no query runs.
    """
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", tune_sqlite_connection)


def tune_sqlite_connection(dbapi_connection, _connection_record) -> None:
    """SQLite in WAL mode: searches keep reading while a clinic's update commits.

    ``synchronous=NORMAL`` is safe with WAL (a power cut may lose the last commits,
    never corrupt the file); ``busy_timeout`` lets a writer wait for another.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
