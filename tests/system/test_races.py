"""Two writes to one listing or one referral at the same moment: exactly one wins.

A real gunicorn server with two worker processes runs on the test database
(PostgreSQL in CI's second pass, SQLite in the first). Each round fires two
conflicting requests at the same instant (connections opened first, then a
barrier) and checks that one succeeds, the other is refused in the error shape
(409; 422 when it arrived after the winner had committed and the merged listing
breaks a rule), nothing answers 5xx, and the stored state is one the rules allow
and is exactly the winner's change. The server's log must hold no listing or
referral value.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from flask_migrate import upgrade

from referral.auth import issue_token
from referral.extensions import db
from referral.listing_rules import listing_problems
from referral.models import Clinic, Provider, ProviderAudit, Referral, ReferralEvent
from referral.schemas.listings import LISTING_FIELDS
from referral.search_sync import SearchState, check_index
from tests.conftest import fresh_database, make_app, new_npi
from tests.system.test_nodes_and_faults import free_port, subprocess_url

#: A reason of the right kind for the changes that need one.
REASONS = {"rejected": {"reason": "no_capacity"}, "cancelled": {"reason": "patient_request"}}

pytestmark = pytest.mark.system

ROUNDS = 20
#: Distinctive values that must never reach the server's log.
SECRET_BIO = "Quorvath-lindqvist reflective practice since 1999"
SECRET_PATIENT_REF = "PT-race-zq81x"


class Server:
    """A gunicorn server with ``workers`` processes forked from a preloaded app (as
    ``gunicorn.conf.py`` runs it) on the test database; log to a file."""

    def __init__(self, database, workers: int = 2):
        self.database = database
        self.workers = workers
        self.port = free_port()
        self.index_dir = tempfile.mkdtemp(prefix="races-index-")
        self.log_path = os.path.join(tempfile.mkdtemp(prefix="races-log-"), "server.log")
        self.process = None

    def start(self) -> Server:
        environment = {**os.environ, "DATABASE_URL": subprocess_url(self.database),
                       "INDEX_DIR": self.index_dir, "RATE_LIMITS": "0",
                       "REFERRAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="races-instance-")}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "--preload",
                 "-b", f"127.0.0.1:{self.port}", "--log-level", "info",
                 "--error-logfile", "-", "referral:create_app()"],
                env=environment, start_new_session=True, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/v1/vocabularies")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.connect()
        return connection

    def request(self, method: str, path: str, body=None, token: str | None = None,
                connection: http.client.HTTPConnection | None = None):
        """``(status, json body)`` of one request (on ``connection`` when given)."""
        connection = connection or self.connect()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def site():
    """``(app, server)`` on a database of this module's own, so that one server (whose
    search index follows that database) serves every test here; dropped afterwards."""
    with fresh_database() as own:
        app = make_app(own)
        with app.app_context():
            upgrade()
        server = Server(own).start()
        try:
            yield app, server
        finally:
            server.stop()
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def site_app(site):
    """The test process's app on the module's database (for looking at what is stored)."""
    return site[0]


@pytest.fixture
def server(site):
    return site[1]


@pytest.fixture
def make_clinic(site_app):
    """``make_clinic(name) -> token`` on the module's database."""
    def build(name: str) -> str:
        with site_app.app_context():
            clinic = Clinic(name=name)
            db.session.add(clinic)
            _, token = issue_token(clinic)
            db.session.commit()
            db.session.remove()
            return token
    return build


def at_once(server: Server, first: tuple, second: tuple) -> list[tuple[int, dict]]:
    """Send two requests ``(method, path, body, token)`` at the same instant."""
    connections = [server.connect(), server.connect()]
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def send(slot: int, request: tuple) -> None:
        method, path, body, token = request
        barrier.wait()
        answers[slot] = server.request(method, path, body, token, connections[slot])

    threads = [threading.Thread(target=send, args=(slot, request))
               for slot, request in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def assert_refused(answer: tuple[int, dict], allowed: set[int]) -> None:
    status, body = answer
    assert status in allowed, (status, body)
    assert set(body) == {"code", "status", "message", "errors"}, body
    assert body["code"] == status


# ---------------------------------------------------------------------------
# Referral status changes


@pytest.fixture
def parties(server, make_clinic):
    """A therapist's clinic and a prescriber's clinic with their listings, on the server."""
    sender = make_clinic("Race Sender Therapy")
    receiver = make_clinic("Race Receiver Psychiatry")
    status, therapist = server.request("POST", "/api/v1/providers", {
        "npi": new_npi(), "first_name": "Tess", "last_name": "Sender",
        "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
        "in_person": False, "licensed_states": ["MA"], "bio": SECRET_BIO}, sender)
    assert status == 201, therapist
    status, prescriber = server.request("POST", "/api/v1/providers", {
        "npi": new_npi(), "first_name": "Priya", "last_name": "Receiver",
        "provider_type": "psychiatric_np", "taxonomy_codes": ["363LP0808X"],
        "telehealth": True, "in_person": False, "licensed_states": ["MA"],
        "accepts_coordinated_care": True}, receiver)
    assert status == 201, prescriber
    return {"sender": sender, "receiver": receiver, "therapist": therapist["id"],
            "prescriber": prescriber["id"]}


#: Each race: two status changes ``(who, status)`` sent at once to a ``requested`` referral.
REFERRAL_RACES = {
    "cancel-and-accept": (("sender", "cancelled"), ("receiver", "accepted")),
    "accept-and-reject": (("receiver", "accepted"), ("receiver", "rejected")),
    "accept-twice": (("receiver", "accepted"), ("receiver", "accepted")),
}


@pytest.mark.parametrize("race", list(REFERRAL_RACES))
def test_simultaneous_status_changes_of_a_referral_have_one_winner(site_app, server, parties,
                                                                   race):
    changes = REFERRAL_RACES[race]
    raced = 0
    for round_number in range(ROUNDS):
        status, referral = server.request("POST", "/api/v1/referrals", {
            "therapist_id": parties["therapist"], "prescriber_id": parties["prescriber"],
            "patient_ref": f"{SECRET_PATIENT_REF}-{round_number}", "patient_state": "MA",
            "concerns": ["depression"], "contact_preference": "phone",
            "consent_to_coordinate": True}, parties["sender"])
        assert status == 201, referral
        path = f"/api/v1/referrals/{referral['id']}/status"
        requests = [("POST", path, {"status": wanted, **REASONS.get(wanted, {})}, parties[who])
                    for who, wanted in changes]
        answers = at_once(server, *requests)
        statuses = [status for status, _ in answers]
        assert all(status < 500 for status in statuses), answers
        if statuses == [200, 200]:
            # A sender may cancel an accepted referral (issue 12): when the accept was
            # saved before the cancel was read, both are right, one after the other.
            assert race == "cancel-and-accept", answers
            with site_app.app_context():
                events = db.session.scalars(db.select(ReferralEvent).where(
                    ReferralEvent.referral_id == referral["id"]).order_by(ReferralEvent.id)).all()
                assert [(e.from_status, e.to_status) for e in events] == [
                    (None, "requested"), ("requested", "accepted"), ("accepted", "cancelled")]
                assert db.session.get(Referral, referral["id"]).status == "cancelled"
                db.session.remove()
            continue
        assert sorted(statuses) == [200, 409], answers
        winner = statuses.index(200)
        loser = answers[1 - winner]
        assert_refused(loser, {409})
        raced += "saved first" in loser[1]["message"]
        wanted = changes[winner][1]
        assert answers[winner][1]["status"] == wanted

        with site_app.app_context():
            stored = db.session.get(Referral, referral["id"])
            events = db.session.scalars(db.select(ReferralEvent).where(
                ReferralEvent.referral_id == referral["id"]).order_by(ReferralEvent.id)).all()
            assert stored.status == wanted
            assert [(e.from_status, e.to_status) for e in events] == [
                (None, "requested"), ("requested", wanted)]
            db.session.remove()
        _, shown = server.request("GET", f"/api/v1/referrals/{referral['id']}",
                                  token=parties["sender"])
        assert [e["to_status"] for e in shown["history"]] == ["requested", wanted]
    assert raced, "no round had both requests in flight together"
    logged = server.log()
    assert SECRET_PATIENT_REF not in logged
    assert "Failing row" not in logged


# ---------------------------------------------------------------------------
# Listing edits


@pytest.fixture
def clinic_listing(server, make_clinic):
    """A clinic token and one of its listings (fees 50-150, telehealth and in person)."""
    token = make_clinic("Race Listing Clinic")
    status, created = server.request("POST", "/api/v1/providers", {
        "npi": new_npi(), "first_name": "Lena", "last_name": "Racewell",
        "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
        "in_person": True, "licensed_states": ["MA"], "address_line1": "1 Main St",
        "state": "MA", "zip": "02115", "fee_min": 50, "fee_max": 150, "bio": SECRET_BIO},
        token)
    assert status == 201, created
    return token, created["id"]


#: Each race: the listing's starting values, and two changes that are each valid alone
#: but together break a rule.
LISTING_RACES = {
    "fees": ({"fee_min": 50, "fee_max": 150}, ({"fee_min": 100}, {"fee_max": 80})),
    "kinds-of-care": ({"telehealth": True, "in_person": True},
                      ({"telehealth": False}, {"in_person": False})),
}


@pytest.mark.parametrize("race", list(LISTING_RACES))
def test_simultaneous_edits_of_a_listing_have_one_winner_and_keep_the_rules(
        site_app, server, clinic_listing, race):
    token, provider_id = clinic_listing
    start, changes = LISTING_RACES[race]
    path = f"/api/v1/providers/{provider_id}"
    raced = 0
    for _ in range(ROUNDS):
        status, body = server.request("PATCH", path, start, token)
        assert status == 200, body
        with site_app.app_context():
            audits_before = db.session.query(ProviderAudit).filter_by(
                provider_id=provider_id).count()
            db.session.remove()
        answers = at_once(server, *[("PATCH", path, change, token) for change in changes])
        statuses = [status for status, _ in answers]
        assert all(status < 500 for status in statuses), answers
        assert statuses.count(200) == 1, answers
        winner = statuses.index(200)
        loser = answers[1 - winner]
        # 409: both were in flight and the other was saved first; 422: this one came after
        # the winner had committed, and the merged listing breaks the rule.
        assert_refused(loser, {409, 422})
        raced += loser[0] == 409

        with site_app.app_context():
            provider = db.session.get(Provider, provider_id)
            stored = {field: getattr(provider, field) for field in LISTING_FIELDS}
            assert listing_problems(stored) == {}
            assert stored == {**stored, **start, **changes[winner]}
            if stored["fee_min"] is not None:
                assert 0 <= stored["fee_min"] <= stored["fee_max"]
            audits_after = db.session.query(ProviderAudit).filter_by(
                provider_id=provider_id).count()
            assert audits_after == audits_before + 1  # the winner's change, audited once
            db.session.remove()
    assert raced, "no round had both requests in flight together"
    # every later edit is still possible (the stored listing is one the rules allow)
    status, body = server.request("PATCH", path, {"wait_days": 3}, token)
    assert status == 200, body
    assert_index_matches(site_app, server)
    logged = server.log()
    assert "Quorvath" not in logged
    assert "Failing row" not in logged


def assert_index_matches(app, server: Server, seconds: float = 10.0) -> None:
    """The server's search index holds exactly the database's active listings, up to date."""
    deadline = time.monotonic() + seconds
    with app.app_context(), db.engine.connect() as connection:
        while True:
            report = check_index(SearchState(server.index_dir), connection, repair=False)
            differences = (report["missing"], report["extra"], report["outdated"])
            if differences == ([], [], []) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert differences == ([], [], []), report
