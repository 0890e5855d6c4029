"""Several server processes on one database, and kill -9 in the middle of work.

Servers are real gunicorn processes on 127.0.0.1, each with its own index
directory, on the test database (PostgreSQL in CI's second pass).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlalchemy.engine import make_url

from referral.extensions import db
from referral.models import Provider
from referral.search_sync import SearchState, check_index
from referral.services import search_service
from tests.conftest import make_app, new_npi

pytestmark = pytest.mark.system


def subprocess_url(database) -> str:
    """The test database as one URL a child process can use (schema included)."""
    url, options = database
    schema_options = options.get("connect_args", {}).get("options")
    parsed = make_url(url)
    if schema_options:
        parsed = parsed.update_query_dict({"options": schema_options})
    return parsed.render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Node:
    """One gunicorn server process with its own index directory."""

    def __init__(self, database, index_dir: str | None = None, **environment):
        self.environment = environment
        self.database = database
        self.index_dir = index_dir or tempfile.mkdtemp(prefix="node-index-")
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        environment = {**os.environ, "DATABASE_URL": subprocess_url(self.database),
                       "INDEX_DIR": self.index_dir, "RATE_LIMITS": "0",
                       "REFERRAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="node-instance-"),
                       **self.environment}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "referral:create_app()"],
            env=environment, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/api/v1/vocabularies")
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the node did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def get(self, path: str, **params) -> dict:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=30) as response:
            return json.load(response)

    def send(self, method: str, path: str, body, token: str, timeout: float = 60):
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


@pytest.fixture
def nodes(app, database):
    started: list[Node] = []

    def start(index_dir=None, **environment) -> Node:
        node = Node(database, index_dir, **environment).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def found_within(node: Node, text: str, seconds: float = 2.0) -> float | None:
    """Seconds until a search for ``text`` on ``node`` finds something (None: not in time)."""
    started = time.monotonic()
    while time.monotonic() - started <= seconds:
        if node.get("/api/v1/providers/search", q=text)["total"]:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def payload(last_name: str) -> dict:
    return {"npi": new_npi(), "first_name": "Node", "last_name": last_name,
            "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
            "in_person": True, "address_line1": "1 Main St", "state": "MA", "zip": "02115",
            "licensed_states": ["MA"], "fee_min": 100, "fee_max": 120}


def test_a_listing_written_on_one_node_is_found_on_the_other(nodes, make_clinic):
    _, token = make_clinic()
    first, second = nodes(), nodes()
    assert first.index_dir != second.index_dir
    status, _ = first.send("POST", "/api/v1/providers", payload("Vandermolen"), token)
    assert status == 201
    assert found_within(second, "Vandermolen") is not None
    # a node stopped during writes catches up when it is back
    index_dir = second.index_dir
    second.kill()
    for name in ("Quillbrook", "Ashcombe", "Tindalwood"):
        assert first.send("POST", "/api/v1/providers", payload(name), token)[0] == 201
    revived = nodes(index_dir)
    for name in ("Quillbrook", "Ashcombe", "Tindalwood", "Vandermolen"):
        assert found_within(revived, name) is not None, name


@pytest.mark.parametrize("delay", [0.4, 1.5])
def test_kill_9_during_a_bulk_upload_leaves_all_or_nothing(app, nodes, make_clinic, delay):
    _, token = make_clinic()
    node = nodes()
    rows = [payload(f"Bulkrow{i:04d}") for i in range(3000)]
    npis = [row["npi"] for row in rows]
    thread = threading.Thread(target=lambda: _ignore(node.send, "POST",
                                                     "/api/v1/providers/bulk", rows, token))
    thread.start()
    time.sleep(delay)
    node.kill()
    thread.join(timeout=30)
    with app.app_context():
        written = db.session.query(Provider).filter(Provider.npi.in_(npis)).count()
        assert written in (0, len(rows))
        state = SearchState(node.index_dir)
        with db.engine.connect() as connection:
            check_index(state, connection, repair=True)
            report = check_index(state, connection, repair=False)
        assert (report["missing"], report["extra"], report["outdated"]) == ([], [], [])


def _ignore(function, *args):
    with contextlib.suppress(OSError):  # the server was killed under the request
        function(*args)


def _unlocked(directory, name: str) -> bool:
    """Whether nobody holds the write lock of the index ``name`` (as ``remove_unused`` asks)."""
    from whoosh.filedb.filestore import FileStorage

    lock = FileStorage(str(directory)).lock(f"{name}_WRITELOCK")
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False


@pytest.mark.parametrize("procs", ["1", "2"])
def test_kill_9_during_reindex_keeps_the_old_index_serving(database, tmp_path, procs):
    from flask_migrate import upgrade

    from seeds.load import seed_directory
    from tests.conftest import fresh_database

    with fresh_database() as own:
        app = make_app(own, INDEX_DIR=str(tmp_path / "index"))
        with app.app_context():
            upgrade(revision="heads")
            seed_directory(12000, seed=4)
            state = search_service(app).state
            with db.engine.connect() as connection:
                state.rebuild(connection)
            old = state.text.current_name()
            environment = {**os.environ, "DATABASE_URL": subprocess_url(own),
                           "INDEX_DIR": str(tmp_path / "index"),
                           "REFERRAL_INSTANCE_PATH": str(tmp_path)}
            reindex = subprocess.Popen([sys.executable, "-m", "referral.cli", "reindex",
                                        "--procs", procs], env=environment,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            half_built: set = set()
            deadline = time.monotonic() + 60
            while not half_built and time.monotonic() < deadline:  # wait for its segments
                assert reindex.poll() is None, reindex.stderr.read()
                half_built = {match.group(1) for name in os.listdir(tmp_path / "index")
                              if (match := re.match(r"^(MAIN\d+x\d+)_[a-z0-9]+\.", name))
                              } - {old}
                time.sleep(0.01)
            reindex.send_signal(signal.SIGKILL)  # in the middle of writing the new index
            reindex.wait(timeout=10)
            assert half_built
            # Its indexing processes (with --procs 2) notice and stop; until then they
            # hold its write lock, so nothing removes the files they are writing.
            deadline = time.monotonic() + 30
            while not all(_unlocked(tmp_path / "index", name) for name in half_built):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            fresh = SearchState(str(tmp_path / "index"))
            assert fresh.text.current_name() == old  # the half-built index never went live
            with db.engine.connect() as connection:
                assert len(fresh.text.search("smith")[0]) > 0
                check_index(fresh, connection, repair=True)
                report = check_index(fresh, connection, repair=False)
                assert report["missing"] == report["extra"] == report["outdated"] == []
                fresh.rebuild(connection)
            names = {match.group(1) for name in os.listdir(tmp_path / "index")
                     if (match := re.match(r"^_?(MAIN\d+x\d+)", name))}
            assert names == {fresh.text.current_name()}  # the half-built index is gone
            db.engine.dispose()


def test_rate_limits_are_shared_between_nodes_through_redis(nodes):
    import uuid

    limits = {"RATE_LIMITS": "1", "RATELIMIT_SEARCH": "3 per minute",
              "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
              "RATELIMIT_KEY_PREFIX": f"referral-test-{uuid.uuid4().hex}"}
    first, second = nodes(**limits), nodes(**limits)
    statuses = []
    for node in (first, second, first, second):
        try:
            node.get("/api/v1/providers/search")
            statuses.append(200)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
            assert json.load(error)["code"] == 429
    assert statuses == [200, 200, 200, 429]
