"""Request hygiene through a real gunicorn started with ``gunicorn.conf.py``, on the test
database: chunked uploads over the body limit are refused before anything is written,
chunked uploads within it work, and the ``Server`` header names no server software.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from referral.extensions import db
from referral.listing_csv import rows_to_csv
from referral.models import Provider, ProviderAudit
from tests.system.test_nodes_and_faults import free_port, subprocess_url

pytestmark = pytest.mark.system

CONFIG = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
BULK = "/api/v1/providers/bulk"


@pytest.fixture
def server(app, database, tmp_path):
    """gunicorn with the production settings file (one worker) on the test database;
    yields its port."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": subprocess_url(database),
                   "INDEX_DIR": tempfile.mkdtemp(prefix="hygiene-index-"), "RATE_LIMITS": "0",
                   "REFERRAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="hygiene-instance-"),
                   "BIND_HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(CONFIG)],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request(port, "GET", "/api/v1/vocabularies")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "gunicorn.log").read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def request(port: int, method: str, path: str, body=None, headers=None, chunked=False):
    """One request: ``(status, headers, body bytes)``; with ``chunked`` the body (an
    iterable of byte strings) goes with ``Transfer-Encoding: chunked``, no length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def in_pieces(data: bytes, size: int = 64 * 1024):
    return (data[start:start + size] for start in range(0, len(data), size))


LIMIT = 5 * 1024 * 1024  # MAX_CONTENT_LENGTH's default
BIO = ("Works with adults and adolescents on anxiety and depression and trauma. " * 30)[:1875]


def oversized_upload(listing) -> bytes:
    """3,000 valid CSV rows (6.2 MB, the bio last) laid out so that the limit falls inside
    a bio, as in issue 11: cut there, the first 5 MiB are valid rows and a last row with
    half a bio, which is what used to be written."""
    rows = [listing(bio=BIO) for _ in range(3000)]
    columns = [name for name in rows[0] if name != "bio"] + ["bio"]
    for shorter in range(0, 2000, 10):
        rows[0]["bio"] = BIO[:len(BIO) - shorter]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, **{k: ";".join(v) for k, v in row.items()
                                    if isinstance(v, list)}} for row in rows)
        body = out.getvalue().encode()
        row_start = body.rfind(b"\n", 0, LIMIT) + 1
        bio_start = body.find(BIO[:40].encode(), row_start)
        if bio_start + 10 < LIMIT < body.find(b"\n", LIMIT) - 10:
            return body
    raise AssertionError("no layout puts the limit inside a bio")


def stored(app) -> tuple[int, int]:
    with app.app_context():
        return db.session.query(Provider).count(), db.session.query(ProviderAudit).count()


def test_an_oversized_chunked_csv_is_413_and_writes_no_row(app, server, make_clinic, listing):
    # The upload of issue 11: 3,000 valid rows, 6.17 MB, chunked, over the 5 MiB limit.
    _, token = make_clinic()
    body = oversized_upload(listing)
    assert 6_000_000 < len(body) < 6_500_000
    status, headers, answer = request(
        server, "POST", BULK, in_pieces(body), chunked=True,
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"})
    error = json.loads(answer)
    assert status == 413, error
    assert set(error) == {"code", "status", "message", "errors"} and error["code"] == 413
    assert "5,242,880 bytes" in error["message"]
    assert stored(app) == (0, 0)
    as_json = json.dumps([listing(bio=BIO) for _ in range(3000)]).encode()
    status, _, answer = request(
        server, "POST", BULK, in_pieces(as_json), chunked=True,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert status == 413 and json.loads(answer)["code"] == 413
    assert stored(app) == (0, 0)


def test_small_chunked_csv_and_json_uploads_work(app, server, make_clinic, listing):
    _, token = make_clinic()
    csv_body = rows_to_csv([listing() for _ in range(3)]).encode()
    status, _, answer = request(
        server, "POST", BULK, in_pieces(csv_body, 100), chunked=True,
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"})
    assert (status, json.loads(answer)["created"]) == (200, 3), answer
    json_body = json.dumps([listing(), listing()]).encode()
    status, _, answer = request(
        server, "POST", BULK, in_pieces(json_body, 100), chunked=True,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert (status, json.loads(answer)["created"]) == (200, 2), answer
    assert stored(app)[0] == 5


def test_the_server_header_names_no_server_software(server):
    for method, path in (("GET", "/api/v1/vocabularies"), ("GET", "/"),
                         ("GET", "/api/v1/nowhere"), ("POST", BULK)):
        status, headers, _ = request(server, method, path)
        servers = [value for name, value in headers if name.lower() == "server"]
        assert servers == ["referral"], (method, path, status, headers)
