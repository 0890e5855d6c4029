"""Two patients' reports on one listing at the same moment, against a real gunicorn server
with two worker processes (SQLite in the first pass, PostgreSQL in the second): the
reported rule must neither miss the threshold (each report counting only itself and the
older ones) nor write ``reported_at`` twice.

Each round: a new listing with one report already filed, then the second and third
reporters' reports fired at the same instant from two loopback addresses (connections
opened first, then a barrier). Both are filed; the listing is reported, its row version
went up exactly once, and of the two events exactly one says ``reported``. The server's
log must hold no report text.
"""

from __future__ import annotations

import http.client
import threading

import pytest
from sqlalchemy import select

from referral.extensions import db
from referral.models import Event, ListingReport, Provider
from tests.conftest import new_npi
from tests.system.test_races import (  # noqa: F401 - fixtures of the race tests, reused
    Server,
    make_clinic,
    server,
    site,
    site_app,
)

pytestmark = pytest.mark.system

ROUNDS = 10
SECRET_TEXT = "Thandrimoor told me the practice is closed"


def connect_from(node: Server, address: str) -> http.client.HTTPConnection:
    """A connection to the server from one loopback address (a distinct reporter)."""
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60,
                                            source_address=(address, 0))
    connection.connect()
    return connection


def report_at_once(node: Server, path: str, addresses: tuple[str, str]) -> list:
    connections = [connect_from(node, address) for address in addresses]
    barrier = threading.Barrier(len(connections))
    answers: list = [None] * len(connections)

    def send(slot: int) -> None:
        barrier.wait()
        answers[slot] = node.request("POST", path, {"reason": "could_not_reach",
                                                    "text": SECRET_TEXT},
                                     connection=connections[slot])

    threads = [threading.Thread(target=send, args=(slot,)) for slot in range(len(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_two_reports_at_once_reach_the_threshold_once(site_app, server, make_clinic):  # noqa: F811
    token = make_clinic("Race Report Clinic")
    for round_number in range(ROUNDS):
        status, listing = server.request("POST", "/api/v1/providers", {
            "npi": new_npi(), "first_name": "Rhea", "last_name": f"Reported{round_number}",
            "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
            "in_person": False, "licensed_states": ["MA"]}, token)
        assert status == 201, listing
        path = f"/api/v1/providers/{listing['id']}/reports"
        status, first = server.request("POST", path, {"reason": "not_accepting"},
                                       connection=connect_from(server, "127.0.0.2"))
        assert status == 201, first
        with site_app.app_context():
            version_before = db.session.get(Provider, listing["id"]).version
            db.session.remove()

        answers = report_at_once(server, path, ("127.0.0.3", "127.0.0.4"))
        assert [status for status, _ in answers] == [201, 201], answers
        assert all(set(body) == {"id", "status"} for _, body in answers)

        with site_app.app_context():
            provider = db.session.get(Provider, listing["id"])
            assert provider.reported_at is not None, "the threshold was missed"
            assert provider.version == version_before + 1, "reported_at written twice"
            assert len(db.session.scalars(select(ListingReport).where(
                ListingReport.provider_id == listing["id"])).all()) == 3
            flags = sorted(event.data["reported"] for event in db.session.scalars(
                select(Event).where(Event.type == "listing.reported")).all()
                if event.data["provider_id"] == listing["id"])
            assert flags == [False, False, True]
            db.session.remove()
        status, shown = server.request("GET", f"/api/v1/providers/{listing['id']}")
        assert status == 200 and shown["verification"]["reported"] is True
    assert "Thandrimoor" not in server.log()
