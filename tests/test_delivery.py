"""Delivering notifications for real: the worker posts signed webhooks to a local HTTP
receiver (verifying with ``standardwebhooks``), retries after 500s and timeouts, gives up
and sends again; emails go to a real SMTP server (aiosmtpd) or to the local outbox."""

from __future__ import annotations

import datetime as dt

import pytest

from config import mail_settings
from referral.delivery import Worker, retry_delay, retry_span
from referral.extensions import db
from referral.models import Clinic, Delivery, Event, OutboxEmail
from tests.conftest import assert_error_shape, bearer, make_app
from tests.receivers import SmtpSink, WebhookReceiver

URL = "/api/v1/referrals"
HOOKS = "/api/v1/clinics/me/webhooks"
SECRET_REF = "PT-4471-hushhush"


@pytest.fixture
def parties(make_clinic, create, app):
    """A sending and a receiving clinic (with email addresses) and their listings."""
    sender_id, sender = make_clinic("Sender Therapy")
    receiver_id, receiver = make_clinic("Receiver Psychiatry")
    _, outsider = make_clinic("Outsider Clinic")
    with app.app_context():
        db.session.get(Clinic, sender_id).email = "intake@sender.example"
        db.session.get(Clinic, receiver_id).email = "referrals@receiver.example"
        db.session.commit()
    therapist = create(sender, last_name="Sender")
    prescriber = create(receiver, last_name="Receiver", provider_type="psychiatric_np",
                        taxonomy_codes=["363LP0808X"], credentials="PMHNP-BC", modalities=[])
    return {"sender": sender, "receiver": receiver, "outsider": outsider,
            "sender_id": sender_id, "receiver_id": receiver_id,
            "therapist": therapist, "prescriber": prescriber}


def refer(client, parties, **overrides):
    body = {"therapist_id": parties["therapist"]["id"],
            "prescriber_id": parties["prescriber"]["id"], "patient_ref": SECRET_REF,
            "patient_state": "MA", "concerns": ["insomnia"], "urgency": "soon",
            "contact_preference": "phone", "consent_to_coordinate": True, **overrides}
    response = client.post(URL, json=body, headers=bearer(parties["sender"]))
    assert response.status_code == 201, response.json
    return response.json


def subscribe(client, token, receiver, path, **extra):
    response = client.post(HOOKS, json={"url": receiver.url(path), **extra},
                           headers=bearer(token))
    assert response.status_code == 201, response.json
    receiver.secrets[path] = response.json["secret"]
    return response.json


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def worker(app, **changes) -> Worker:
    made = Worker(app, concurrency=4)
    for name, value in changes.items():
        setattr(made, name, value)
    return made


def test_webhooks_are_signed_per_the_standard_and_carry_ids_and_status_only(
        app, client, parties, receiver):
    subscribe(client, parties["sender"], receiver, "/sender")
    subscribe(client, parties["receiver"], receiver, "/receiver")
    referral = refer(client, parties)
    client.post(f"{URL}/{referral['id']}/status", json={"status": "accepted"},
                headers=bearer(parties["receiver"]))
    worker(app).run_until_idle()
    assert len(receiver.received) == 4  # two events, to both clinics' endpoints
    assert all(entry["verified"] for entry in receiver.received)
    by_path = {}
    for entry in receiver.received:
        by_path.setdefault(entry["path"], []).append(entry["body"])
    for path in ("/sender", "/receiver"):
        # deliveries run concurrently, so they may arrive in any order: receivers order
        # events by their timestamp (as Standard Webhooks advises)
        arrived = sorted(by_path[path], key=lambda b: b["timestamp"])
        assert [(b["type"], b["data"]["status"]) for b in arrived] == [
            ("referral.created", "requested"), ("referral.status_changed", "accepted")]
        assert all(b["data"]["referral_id"] == referral["id"] for b in by_path[path])
    raw = str([entry["body"] for entry in receiver.received])
    assert SECRET_REF not in raw and "insomnia" not in raw and "MA" not in raw
    headers = receiver.received[0]["headers"]
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-signature"][:3] == "v1,"
    # a signature made with another secret does not verify
    receiver.secrets["/sender"] = "whsec_" + "A" * 32
    client.post(f"{URL}/{referral['id']}/messages", json={"text": "Hello"},
                headers=bearer(parties["sender"]))
    worker(app).run_until_idle()
    assert [e["verified"] for e in receiver.received[4:] if e["path"] == "/sender"] == [False]


def test_a_500_is_retried_with_the_same_webhook_id_until_it_succeeds(app, client, parties):
    receiver = WebhookReceiver(answer=lambda webhook_id, attempt: 500 if attempt < 3 else 204)
    try:
        hook = subscribe(client, parties["receiver"], receiver, "/flaky")
        refer(client, parties)
        worker(app, base=0.05).run_until_idle()
        ids = [entry["webhook_id"] for entry in receiver.received]
        assert len(ids) == 3 and len(set(ids)) == 1
        assert list(receiver.processed) == ids[:1]
        log = client.get(f"{HOOKS}/{hook['id']}/deliveries",
                         headers=bearer(parties["receiver"])).json
        assert log["total"] == 1
        entry = log["items"][0]
        assert (entry["status"], entry["attempts"], entry["last_status_code"]) == (
            "delivered", 3, 204)
        assert entry["event_id"] == ids[0] and entry["event_type"] == "referral.created"
        assert entry["next_attempt_at"] is None
    finally:
        receiver.close()


def test_give_up_after_the_last_attempt_then_send_again(app, client, parties):
    answers = {"status": 500}
    receiver = WebhookReceiver(answer=lambda webhook_id, attempt: answers["status"],
                               body=b"x" * 5000)
    try:
        hook = subscribe(client, parties["receiver"], receiver, "/down")
        refer(client, parties)
        worker(app, base=0.02, max_attempts=3).run_until_idle()
        log_url = f"{HOOKS}/{hook['id']}/deliveries"
        entry = client.get(log_url, headers=bearer(parties["receiver"])).json["items"][0]
        assert (entry["status"], entry["attempts"], entry["last_status_code"]) == (
            "failed", 3, 500)
        assert len(entry["last_response"]) == 1024  # 1 KB of the 5 KB answer is kept
        answers["status"] = 200
        again = client.post(f"{log_url}/{entry['id']}/retry",
                            headers=bearer(parties["receiver"]))
        assert again.status_code == 202 and again.json["status"] == "pending"
        worker(app).run_until_idle()
        entry = client.get(log_url, headers=bearer(parties["receiver"])).json["items"][0]
        assert (entry["status"], entry["attempts"]) == ("delivered", 4)
        assert len(receiver.received) == 4
        # another clinic cannot see or resend this endpoint's deliveries
        assert_error_shape(client.get(log_url, headers=bearer(parties["sender"])), 404)
        assert_error_shape(client.post(f"{log_url}/{entry['id']}/retry",
                                       headers=bearer(parties["sender"])), 404)
        assert_error_shape(client.post(f"{log_url}/999999/retry",
                                       headers=bearer(parties["receiver"])), 404)
    finally:
        receiver.close()


def test_a_slow_receiver_times_out_and_is_retried(app, client, parties):
    receiver = WebhookReceiver(delay=1.0)
    try:
        subscribe(client, parties["receiver"], receiver, "/slow")
        refer(client, parties)
        slow = worker(app, max_attempts=1)
        slow.sender.timeout = type(slow.sender.timeout)(connect=0.3, read=0.3)
        slow.run_until_idle()
        with app.app_context():
            delivery = db.session.scalars(db.select(Delivery)
                                          .where(Delivery.channel == "webhook")).one()
            assert delivery.status == "failed" and "Timeout" in delivery.last_error
            assert delivery.last_status_code is None
    finally:
        receiver.close()


def test_retry_schedule_spans_more_than_a_day_by_default(app):
    config = app.config
    span = retry_span(config["WEBHOOK_RETRY_BASE"], config["WEBHOOK_RETRY_MAX"],
                      config["WEBHOOK_MAX_ATTEMPTS"])
    assert span >= 24 * 3600
    delays = [retry_delay(n, 5, 3600) for n in range(1, 12)]
    assert delays[0] >= 5 and delays[1] >= 10 and max(delays) <= 3600 * 1.2
    assert all(later >= earlier * 0.8 for earlier, later in zip(delays, delays[1:], strict=False))


def test_emails_reach_a_real_smtp_server_without_patient_fields(app, database, client,
                                                                parties):
    smtp = SmtpSink()
    try:
        mailing = make_app(database, SMTP_URL=smtp.url, MAIL_FROM="referrals@directory.example",
                           PUBLIC_BASE_URL="https://directory.example",
                           **mail_settings(smtp.url, "referrals@directory.example"))
        referral = refer(client, parties)
        client.post(f"{URL}/{referral['id']}/status", json={"status": "accepted"},
                    headers=bearer(parties["receiver"]))
        client.post(f"{URL}/{referral['id']}/messages",
                    json={"text": "Patient prefers mornings; sertraline history."},
                    headers=bearer(parties["receiver"]))
        Worker(mailing, concurrency=2).run_until_idle()
        mails = {(m["X-Envelope-To"], m["Subject"]): m for m in smtp.messages}
        assert set(mails) == {
            ("referrals@receiver.example", "You have a new referral"),
            ("intake@sender.example", "Referral accepted"),
            ("intake@sender.example", "A new message on a referral")}
        for message in smtp.messages:
            body = message.get_payload(decode=True).decode()
            assert f"https://directory.example/clinic/referrals/{referral['id']}" in body
            assert SECRET_REF not in body and "insomnia" not in body.lower()
            assert "sertraline" not in body and "mornings" not in body
            assert message["From"] == "referrals@directory.example"
        with mailing.app_context():
            assert db.session.query(OutboxEmail).count() == 0
    finally:
        smtp.close()


def test_without_smtp_emails_go_to_the_local_outbox_once(app, client, parties):
    referral = refer(client, parties)
    Worker(app, concurrency=2).run_until_idle()
    with app.app_context():
        rows = db.session.scalars(db.select(OutboxEmail)).all()
        assert [(r.clinic_id, r.subject) for r in rows] == [
            (parties["receiver_id"], "You have a new referral")]
        assert f"/clinic/referrals/{referral['id']}" in rows[0].body
        # a retried email (same event, same clinic) is stored once
        delivery = db.session.scalars(db.select(Delivery)).one()
        delivery.status, delivery.next_attempt_at = "pending", dt.datetime.now(dt.UTC)
        db.session.commit()
    Worker(app, concurrency=2).run_until_idle()
    with app.app_context():
        assert db.session.query(OutboxEmail).count() == 1


def test_events_are_written_with_the_change_or_not_at_all(app, client, parties):
    response = client.post(URL, json={"therapist_id": parties["therapist"]["id"],
                                      "prescriber_id": parties["prescriber"]["id"],
                                      "patient_ref": "PT-1", "patient_state": "MA",
                                      "contact_preference": "phone",
                                      "consent_to_coordinate": False},
                           headers=bearer(parties["sender"]))
    assert_error_shape(response, 422)
    referral = refer(client, parties)
    assert_error_shape(client.post(f"{URL}/{referral['id']}/status",
                                   json={"status": "completed"},
                                   headers=bearer(parties["receiver"])), 409)
    with app.app_context():
        assert [(e.type, e.data) for e in db.session.scalars(db.select(Event))] == [
            ("referral.created", {"referral_id": referral["id"], "status": "requested"})]


def test_a_claim_takes_at_most_its_limit_and_a_second_worker_gets_the_others(
        app, client, parties, receiver):
    subscribe(client, parties["receiver"], receiver, "/many")
    for number in range(12):
        refer(client, parties, patient_ref=f"PT-{number}")
    first, second = Worker(app, concurrency=4), Worker(app, concurrency=4)
    with app.app_context():
        taken = first.claim(5)
        others = second.claim(100)
        assert len(taken) == 5 and len(others) == 24 - 5
        assert not {j.delivery_id for j in taken} & {j.delivery_id for j in others}
        assert first.claim(5) == []  # everything is leased
        leased = db.session.scalars(db.select(Delivery.lease_owner)).all()
        assert sorted(leased) == sorted([first.name] * 5 + [second.name] * 19)


def test_an_in_process_worker_delivers_too(app, database, parties):
    """IN_PROCESS_WORKER=1: the web process sends its own notifications (one-process set-ups)."""
    import time

    serving = make_app(database, IN_PROCESS_WORKER=True)
    try:
        client = serving.test_client()
        response = client.post(URL, json={
            "therapist_id": parties["therapist"]["id"],
            "prescriber_id": parties["prescriber"]["id"], "patient_ref": "PT-inproc",
            "patient_state": "MA", "contact_preference": "phone",
            "consent_to_coordinate": True}, headers=bearer(parties["sender"]))
        assert response.status_code == 201
        deadline = time.monotonic() + 20
        subjects = []
        while not subjects and time.monotonic() < deadline:
            with serving.app_context():
                subjects = db.session.scalars(db.select(OutboxEmail.subject)).all()
                db.session.remove()
            time.sleep(0.1)
        assert subjects == ["You have a new referral"]
    finally:
        serving.extensions["referral_worker_stop"].set()
