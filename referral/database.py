"""The app's database: Flask-SQLAlchemy and Alembic migrations bound to the app, timeouts
so that a slow or frozen database never holds a worker, and SQLite tuned for a directory
that is read while clinics write.

Everything is attached to the app's own engines, never to SQLAlchemy's ``Engine``
class, so engines made elsewhere in the same process (a script's, a test's, another
app's) stay as they are.

Timeouts (``config.py``):

- PostgreSQL connections are opened within ``DB_CONNECT_TIMEOUT`` seconds and carry
  ``statement_timeout = DB_STATEMENT_TIMEOUT``.
- During a web request, a PostgreSQL statement that has not answered within
  ``DB_REQUEST_TIMEOUT`` seconds is abandoned: a watchdog thread shuts the connection's
  socket down, the driver raises, and the request answers 503 (``security``). The
  server-side timeout alone cannot do this: a frozen network never delivers its answer.
- A pooled connection is checked with ``SELECT 1`` before each use (what SQLAlchemy's
  ``pool_pre_ping`` does), under the same watchdog with a one-second deadline; a dead one
  is replaced.
- SQLite writers wait at most ``DB_REQUEST_TIMEOUT`` seconds for another writer's lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

from flask import Flask, has_request_context
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

from .extensions import db, migrate

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
#: How long a pooled connection's liveness check may take, in seconds.
PING_DEADLINE = 1.0


def init_app(app: Flask) -> None:
    """Bind the database and migrations to ``app``; set up its engines' timeouts.

    Flask-SQLAlchemy creates the engines here without connecting: no query runs.
    """
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    config = app.config
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                busy_ms = config["DB_REQUEST_TIMEOUT"] * 1000
                event.listen(engine, "connect",
                             lambda dbapi, _record, ms=busy_ms: tune_sqlite_connection(dbapi, ms))
            elif engine.dialect.name == "postgresql":
                guard_postgresql(engine, config["DB_CONNECT_TIMEOUT"],
                                 config["DB_STATEMENT_TIMEOUT"], config["DB_REQUEST_TIMEOUT"])


#: SQLite reads up to this much of the database file through a memory map.
SQLITE_MMAP_BYTES = 1 << 30


def tune_sqlite_connection(dbapi_connection, busy_timeout_ms: int = 5000) -> None:
    """SQLite in WAL mode: searches keep reading while a clinic's update commits.

    ``synchronous=NORMAL`` is safe with WAL (a power cut may lose the last commits,
    never corrupt the file); ``busy_timeout`` lets a writer wait for another, this long.
    ``mmap_size``: pages are read from the operating system's cache in place, shared by
    every connection and process, instead of being copied through each connection's
    2 MB page cache (20 listings picked across a 1,000,000-listing file took 3-5 ms to
    read without it, 0.3 ms with it).
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


class Watchdog:
    """Cuts database connections whose current statement has run past its deadline.

    One daemon thread per process, started on first use (so after gunicorn forks).
    """

    def __init__(self) -> None:
        self._running: dict[int, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, dbapi_connection, seconds: float) -> None:
        """Cut ``dbapi_connection`` unless ``release`` is called within ``seconds``."""
        with self._lock:
            self._running[id(dbapi_connection)] = (time.monotonic() + seconds, dbapi_connection)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="db-watchdog",
                                                daemon=True)
                self._thread.start()

    def release(self, dbapi_connection) -> None:
        """The statement on ``dbapi_connection`` answered."""
        with self._lock:
            self._running.pop(id(dbapi_connection), None)

    def _run(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self._lock:
                late = [key for key, (deadline, _) in self._running.items() if deadline <= now]
                cut = [self._running.pop(key)[1] for key in late]
            for dbapi_connection in cut:
                cut_connection(dbapi_connection)


def cut_connection(dbapi_connection) -> None:
    """Shut down a psycopg connection's socket: a read blocked on it fails at once."""
    try:
        descriptor = os.dup(dbapi_connection.pgconn.socket)
    except Exception:  # the connection is closed already
        return
    with socket.socket(fileno=descriptor) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def guard_postgresql(engine, connect_timeout: int, statement_timeout: int,
                     request_timeout: int) -> None:
    """Connect and statement timeouts, a checked pool, and the request deadline."""
    watchdog = Watchdog()

    @event.listens_for(engine, "do_connect")
    def _timeouts(_dialect, _record, _cargs, cparams):
        cparams.setdefault("connect_timeout", connect_timeout)
        option = f"-c statement_timeout={statement_timeout * 1000}"
        cparams["options"] = f"{cparams.get('options', '')} {option}".strip()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, _record, _proxy):
        watchdog.watch(dbapi_connection, PING_DEADLINE)
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as error:  # the pool replaces the connection
            raise DisconnectionError() from error
        finally:
            watchdog.release(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(connection, _cursor, _statement, _parameters, _context, _executemany):
        if has_request_context():
            watchdog.watch(connection.connection.dbapi_connection, request_timeout)

    @event.listens_for(engine, "after_cursor_execute")
    def _done(connection, _cursor, _statement, _parameters, _context, _executemany):
        watchdog.release(connection.connection.dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def _failed(context):
        if context.connection is not None and context.connection.connection is not None:
            dbapi_connection = context.connection.connection.dbapi_connection
            if dbapi_connection is not None:
                watchdog.release(dbapi_connection)
