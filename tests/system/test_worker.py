"""Delivery workers as real processes on the test database (PostgreSQL in CI's second
pass): kill -9 in the middle of delivering loses nothing, and two workers never make
the same attempt twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from sqlalchemy import func, select

from referral.extensions import db
from referral.models import Delivery, Event
from tests.conftest import bearer
from tests.receivers import WebhookReceiver
from tests.system.test_nodes_and_faults import subprocess_url

pytestmark = pytest.mark.system


def start_worker(database, **environment) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": subprocess_url(database), "RATE_LIMITS": "0",
           "REFERRAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="worker-instance-"),
           "WORKER_POLL": "0.05", "WORKER_DAILY_JOBS": "0", **environment}
    return subprocess.Popen([sys.executable, "-m", "referral.cli", "worker",
                             "--report-every", "1"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> str:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    _, err = process.communicate(timeout=30)
    return err


@pytest.fixture
def referring(make_clinic, create, client):
    """A sending clinic and a receiving clinic with a webhook to a local receiver."""
    _, sender = make_clinic("Sender Therapy")
    _, receiver_token = make_clinic("Receiver Psychiatry")
    therapist = create(sender, last_name="Sender")
    prescriber = create(receiver_token, last_name="Receiver", provider_type="psychiatric_np",
                        taxonomy_codes=["363LP0808X"], credentials="PMHNP-BC", modalities=[])

    def setup(receiver: WebhookReceiver, count: int) -> None:
        hook = client.post("/api/v1/clinics/me/webhooks",
                           json={"url": receiver.url("/in"), "event_types": ["referral.created"]},
                           headers=bearer(receiver_token)).json
        receiver.secrets["/in"] = hook["secret"]
        for number in range(count):
            response = client.post("/api/v1/referrals", json={
                "therapist_id": therapist["id"], "prescriber_id": prescriber["id"],
                "patient_ref": f"PT-{number}", "patient_state": "MA",
                "contact_preference": "phone", "consent_to_coordinate": True},
                headers=bearer(sender))
            assert response.status_code == 201
    return setup


def webhook_ids(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(
            select(Event.public_id).join(Delivery, Delivery.event_id == Event.id)
            .where(Delivery.channel == "webhook")))


def wait_until_delivered(app, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            pending = db.session.scalar(select(func.count()).select_from(Delivery)
                                        .where(Delivery.status != "delivered"))
            db.session.remove()
        if not pending:
            return
        time.sleep(0.1)
    raise AssertionError(f"{pending} deliveries not delivered in {seconds} s")


def test_kill_9_mid_delivery_loses_nothing_and_each_event_is_processed_once(
        app, database, referring):
    receiver = WebhookReceiver(delay=0.05)
    try:
        referring(receiver, 150)
        expected = webhook_ids(app)
        assert len(expected) == 150
        worker = start_worker(database, WORKER_LEASE="2", WORKER_CONCURRENCY="8")
        deadline = time.monotonic() + 60
        while len(receiver.received) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop(worker, signal.SIGKILL)  # in the middle: about 8 requests in flight
        received_at_kill = len(receiver.received)
        assert 40 <= received_at_kill < 150
        restarted = start_worker(database, WORKER_LEASE="2", WORKER_CONCURRENCY="8")
        try:
            wait_until_delivered(app, 60)
        finally:
            log = stop(restarted)
        assert set(receiver.processed) == expected  # every event, each processed once
        ids = [entry["webhook_id"] for entry in receiver.received]
        repeated = {i for i in ids if ids.count(i) > 1}
        assert len(repeated) <= 8  # only the attempts in flight at the kill were made again
        with app.app_context():  # and the claim never takes more than the worker's slots
            assert db.session.scalar(select(func.max(Delivery.attempts))) <= 2
        assert all(entry["verified"] for entry in receiver.received)
        with app.app_context():
            attempts = dict(db.session.execute(
                select(Event.public_id, Delivery.attempts).join(Event)
                .where(Delivery.channel == "webhook")).all())
        assert all(attempts[i] >= 2 for i in repeated)
        assert "delivered" in log  # progress in the worker's log
    finally:
        receiver.close()


def test_two_workers_never_make_the_same_attempt_twice(app, database, referring):
    # every first attempt fails, every second succeeds: each id must arrive exactly twice
    receiver = WebhookReceiver(answer=lambda webhook_id, attempt: 500 if attempt == 1 else 200)
    try:
        referring(receiver, 200)
        expected = webhook_ids(app)
        settings = {"WEBHOOK_RETRY_BASE": "0.2", "WORKER_CONCURRENCY": "8"}
        workers = [start_worker(database, **settings) for _ in range(2)]
        try:
            wait_until_delivered(app, 90)
        finally:
            logs = [stop(worker) for worker in workers]
        ids = [entry["webhook_id"] for entry in receiver.received]
        assert set(ids) == expected
        counts = {i: ids.count(i) for i in expected}
        assert set(counts.values()) == {2}, {i: n for i, n in counts.items() if n != 2}
        assert all("delivered" in log for log in logs)  # both workers did some of the work
    finally:
        receiver.close()


def test_the_worker_logs_each_line_once(app, database):
    """Progress lines go to the log once, in the worker's format (Flask's handler on the
    package's logger used to print each again)."""
    process = start_worker(database)
    time.sleep(3)
    log = stop(process).splitlines()
    progress = [line for line in log if "pending" in line]
    assert progress, log
    assert all(" INFO referral.delivery: worker " in line for line in progress), progress
    assert len(progress) == len(set(progress))
