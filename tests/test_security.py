"""Rate limits, security headers, CORS, token rotation, and 503 while the database is down."""

from __future__ import annotations

import contextlib
import time

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import assert_error_shape, bearer, make_app

SEARCH = "/api/v1/providers/search"


@pytest.fixture
def limited(app, database):
    """A second app on the same (migrated) database with tiny limits."""
    return make_app(database, RATE_LIMITS=True, RATELIMIT_SEARCH="3 per minute",
                    RATELIMIT_WRITE="2 per minute", RATELIMIT_AUTH_FAILURES="3 per minute")


def test_search_is_rate_limited_per_client(limited):
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.0.21"}
    statuses = [client.get(SEARCH, environ_base=here).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    body = assert_error_shape(client.get(SEARCH, environ_base=here), 429)
    assert body["message"] == ("Too many requests (the limit is 3 per minute). "
                               "Please wait a minute and try again.")
    other = client.get(SEARCH, environ_base={"REMOTE_ADDR": "127.0.0.22"})
    assert other.status_code == 200
    page = client.get("/?zip=10001", environ_base={"REMOTE_ADDR": "127.0.0.23"})
    assert page.status_code == 200


def test_pages_and_api_share_one_search_budget(limited):
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.0.31"}
    statuses = [client.get(SEARCH, environ_base=here).status_code,
                client.get("/?zip=10001", environ_base=here).status_code,
                client.get("/api/v1/match", query_string={"zip": "10001"},
                           environ_base=here).status_code,
                client.get("/?zip=10002", environ_base=here).status_code,
                client.get(SEARCH, environ_base=here).status_code]
    assert statuses == [200, 200, 200, 429, 429]
    page = client.get("/?zip=10003", environ_base=here)
    assert "988" in page.get_data(as_text=True)  # the crisis line is on the 429 page too


def test_failed_authentications_are_limited_per_address(limited, make_clinic, listing):
    _, real = make_clinic("Real Clinic")
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.0.41"}
    statuses = [client.post("/api/v1/providers", json=listing(), environ_base=here,
                            headers=bearer(f"mhd_fake{n}")).status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    blocked = client.get("/api/v1/clinics/me", headers=bearer(real), environ_base=here)
    assert_error_shape(blocked, 429)
    elsewhere = client.get("/api/v1/clinics/me", headers=bearer(real),
                           environ_base={"REMOTE_ADDR": "127.0.0.42"})
    assert elsewhere.status_code == 200


def test_failed_sign_ins_are_limited_per_address(limited):
    import re

    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.0.51"}
    page = client.get("/clinic/sign-in", environ_base=here).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    statuses = [client.post("/clinic/sign-in", data={"token": f"mhd_guess{n}", "csrf_token": csrf},
                            environ_base=here).status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_writes_are_rate_limited_per_token(limited, make_clinic, listing):
    _, first = make_clinic("One")
    _, second = make_clinic("Two")
    client = limited.test_client()
    statuses = [client.post("/api/v1/providers", json=listing(), headers=bearer(first))
                .status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert client.post("/api/v1/providers", json=listing(),
                       headers=bearer(second)).status_code == 201


def test_security_headers_everywhere(client):
    for path in ("/", "/api/v1/providers", "/clinic/sign-in", "/api/v1/nowhere"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert client.get("/clinic/sign-in").headers["Cache-Control"] == "no-store"


def test_cors_allows_public_reads_only(client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token)
    origin = {"Origin": "https://elsewhere.example"}
    for path in (SEARCH, "/api/v1/providers", f"/api/v1/providers/{provider['id']}",
                 "/api/v1/vocabularies", "/api/v1/openapi.json"):
        assert client.get(path, headers=origin).headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/api/v1/providers", headers={
        **origin, "Access-Control-Request-Method": "POST"})
    assert "POST" not in preflight.headers.get("Access-Control-Allow-Methods", "")
    written = client.post("/api/v1/providers", json={}, headers={**origin, **bearer(token)})
    assert "Access-Control-Allow-Origin" not in written.headers
    private = client.get("/api/v1/clinics/me", headers={**origin, **bearer(token)})
    assert "Access-Control-Allow-Origin" not in private.headers


def test_token_rotation_and_revocation(client, make_clinic):
    _, old = make_clinic()
    created = client.post("/api/v1/clinics/me/tokens", json={"label": "ehr"},
                          headers=bearer(old))
    assert created.status_code == 201
    new = created.json["token"]
    assert new.startswith("mhd_") and created.json["prefix"] == new[:12]
    listed = client.get("/api/v1/clinics/me/tokens", headers=bearer(new)).json
    assert len(listed) == 2 and all("token" not in row for row in listed)
    old_id = next(row["id"] for row in listed if row["id"] != created.json["id"])
    revoked = client.delete(f"/api/v1/clinics/me/tokens/{old_id}", headers=bearer(new))
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert_error_shape(client.get("/api/v1/clinics/me", headers=bearer(old)), 401)
    assert client.get("/api/v1/clinics/me", headers=bearer(new)).status_code == 200
    _, stranger = make_clinic("Stranger")
    assert_error_shape(client.delete(f"/api/v1/clinics/me/tokens/{created.json['id']}",
                                     headers=bearer(stranger)), 404)
    assert_error_shape(client.post("/api/v1/clinics/me/tokens", json={"x": 1},
                                   headers=bearer(new)), 422)


def test_database_outage_answers_503_and_recovers(database, monkeypatch):
    from referral.extensions import db

    app = make_app(database, TESTING=False)
    client = app.test_client()
    assert client.get("/api/v1/providers").status_code == 200
    real = db.session.connection

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    monkeypatch.setattr(db.session, "connection", down)
    monkeypatch.setattr(db.session, "scalar", lambda *a, **k: down())
    monkeypatch.setattr(db.session, "scalars", lambda *a, **k: down())
    body = assert_error_shape(client.get("/api/v1/providers"), 503)
    assert "unavailable" in body["message"]
    assert client.get("/api/v1/providers").headers["Retry-After"] == "5"
    assert client.get("/").status_code in (200, 503)
    monkeypatch.setattr(db.session, "connection", real)
    monkeypatch.undo()
    assert client.get("/api/v1/providers").status_code == 200


class FlakyProxy:
    """A TCP forwarder to PostgreSQL on loopback that the test can cut and restore."""

    def __init__(self, target_port: int):
        import socket
        import threading

        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list = []
        self.up = True
        self.frozen = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, target):
        try:
            while data := source.recv(65536):
                while self.frozen:  # the bytes arrived; nothing answers
                    time.sleep(0.05)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self):
        """PostgreSQL 'stops': every connection drops and new ones are refused."""
        self.up = False
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.close()
            self.connections.clear()

    def restore(self):
        """PostgreSQL is back."""
        self.up = True

    def freeze(self):
        """PostgreSQL (or the network) hangs: connections stay open, nothing answers."""
        self.frozen = True

    def thaw(self):
        """The hang is over."""
        self.frozen = False


@pytest.fixture
def proxied_node(app, database):
    """A node whose PostgreSQL connections go through a ``FlakyProxy``, answering at first:
    ``(proxy, test client)``."""
    from sqlalchemy.engine import make_url

    url, options = database
    target = make_url(url)
    proxy = FlakyProxy(target.port or 5432)
    proxied = target.set(host="127.0.0.1", port=proxy.port)
    node = make_app((proxied.render_as_string(hide_password=False), options), TESTING=False)
    client = node.test_client()
    assert client.get("/api/v1/providers").status_code == 200
    return proxy, client


@pytest.mark.skipif("postgresql" not in (__import__("os").environ.get("TEST_DATABASE_URL")
                                         or ""), reason="needs PostgreSQL (CI runs it there)")
def test_postgresql_going_away_answers_503_then_recovers(proxied_node):
    proxy, client = proxied_node
    proxy.cut()
    for _ in range(3):
        body = assert_error_shape(client.get("/api/v1/providers"), 503)
        assert "unavailable" in body["message"]
    proxy.restore()
    assert client.get("/api/v1/providers").status_code == 200  # no restart needed


@pytest.mark.skipif("postgresql" not in (__import__("os").environ.get("TEST_DATABASE_URL")
                                         or ""), reason="needs PostgreSQL (CI runs it there)")
def test_a_frozen_database_answers_503_within_five_seconds(proxied_node):
    proxy, client = proxied_node
    proxy.freeze()
    try:
        for _ in range(2):
            started = time.monotonic()
            body = assert_error_shape(client.get("/api/v1/providers"), 503)
            assert time.monotonic() - started < 5, time.monotonic() - started
            assert "unavailable" in body["message"]
        started = time.monotonic()
        assert client.get("/api/v1/vocabularies").status_code == 200  # needs no database
        assert time.monotonic() - started < 1
    finally:
        proxy.thaw()
    assert client.get("/api/v1/providers").status_code == 200  # recovers by itself


def test_a_locked_sqlite_database_answers_503_within_five_seconds(tmp_path):
    import sqlite3

    from flask_migrate import upgrade

    path = tmp_path / "locked.sqlite3"
    node = make_app((f"sqlite:///{path}", {}), TESTING=False)
    with node.app_context():
        upgrade(revision="heads")
    from referral.auth import issue_token
    from referral.extensions import db
    from referral.models import Clinic
    with node.app_context():
        clinic = Clinic(name="Locked Out")
        db.session.add(clinic)
        _, token = issue_token(clinic)
        db.session.commit()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        started = time.monotonic()
        response = node.test_client().post("/api/v1/clinics/me/tokens", json={"label": "x"},
                                           headers=bearer(token))
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert_error_shape(response, 503)
    assert 4 < elapsed < 7, elapsed


@pytest.mark.parametrize("proxies", [0, 1])
def test_the_client_address_comes_from_the_proxy_only_when_proxies_are_trusted(database, app,
                                                                               proxies):
    """Behind a trusted proxy each patient has their own budget; without one, a forged
    ``X-Forwarded-For`` buys nobody a fresh budget."""
    limited = make_app(database, RATE_LIMITS=True, RATELIMIT_SEARCH="2 per minute",
                       TRUSTED_PROXIES=proxies)
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.3.1"}
    for _ in range(2):
        assert client.get("/api/v1/providers/search", environ_base=here,
                          headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
    other = client.get("/api/v1/providers/search", environ_base=here,
                       headers={"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == (200 if proxies else 429)
    again = client.get("/api/v1/providers/search", environ_base=here,
                       headers={"X-Forwarded-For": "203.0.113.7"})
    assert again.status_code == 429
