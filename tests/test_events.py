"""The notification outbox: who an event goes to, by which channel, and listing reminders;
the CLI commands of the loop."""

from __future__ import annotations

import datetime as dt

from cryptography.fernet import Fernet

from referral.extensions import db
from referral.models import Delivery, Event, Provider, ReminderDigest
from tests.conftest import bearer


def test_reminders_go_to_clinics_with_stale_listings_only(app, runner, make_clinic, create):
    stale_id, stale_token = make_clinic("Stale Clinic")
    _, fresh_token = make_clinic("Fresh Clinic")
    old = create(stale_token, last_name="Oldlisting")
    create(fresh_token, last_name="Newlisting")
    client = app.test_client()
    hook = client.post("/api/v1/clinics/me/webhooks",
                       json={"url": "http://127.0.0.1:9/in", "event_types": ["listing.reminder"]},
                       headers=bearer(stale_token)).json
    with app.app_context():
        db.session.get(Provider, old["id"]).last_verified_at = (
            dt.datetime.now(dt.UTC) - dt.timedelta(days=120))
        db.session.commit()
    result = runner.invoke(args=["remind-stale"])
    assert result.exit_code == 0 and "Sent 1 listing digests" in result.output
    with app.app_context():
        events = db.session.scalars(db.select(Event)).all()
        digest = db.session.scalars(db.select(ReminderDigest)).one()
        assert [(e.type, e.data) for e in events] == [
            ("listing.reminder", {"provider_ids": [old["id"]], "count": 1,
                                  "digest_id": digest.id, "stale_provider_ids": [old["id"]]})]
        deliveries = {(d.channel, d.clinic_id, d.endpoint_id)
                      for d in db.session.scalars(db.select(Delivery))}
        assert deliveries == {("webhook", stale_id, hook["id"]), ("email", stale_id, None)}


def test_webhooks_get_only_their_subscribed_types(app, make_clinic, create, listing):
    _, sender = make_clinic("Sender")
    _, receiver = make_clinic("Receiver")
    client = app.test_client()
    therapist = create(sender)
    prescriber = create(receiver, provider_type="psychiatrist", taxonomy_codes=["2084P0800X"],
                        modalities=[])
    only_messages = client.post("/api/v1/clinics/me/webhooks", json={
        "url": "http://127.0.0.1:9/m", "event_types": ["referral.message"]},
        headers=bearer(receiver)).json
    deleted = client.post("/api/v1/clinics/me/webhooks", json={"url": "http://127.0.0.1:9/d"},
                          headers=bearer(receiver)).json
    client.delete(f"/api/v1/clinics/me/webhooks/{deleted['id']}", headers=bearer(receiver))
    referral = client.post("/api/v1/referrals", json={
        "therapist_id": therapist["id"], "prescriber_id": prescriber["id"],
        "patient_ref": "PT-9", "patient_state": "MA", "contact_preference": "phone",
        "consent_to_coordinate": True}, headers=bearer(sender)).json
    client.post(f"/api/v1/referrals/{referral['id']}/messages", json={"text": "hello"},
                headers=bearer(sender))
    with app.app_context():
        rows = db.session.execute(db.select(Event.type, Delivery.channel, Delivery.endpoint_id)
                                  .join(Delivery, Delivery.event_id == Event.id)
                                  .order_by(Delivery.id)).all()
    assert [tuple(row) for row in rows] == [
        ("referral.created", "email", None),
        ("referral.message", "webhook", only_messages["id"]),
        ("referral.message", "email", None)]


def test_new_key_prints_a_fernet_key(runner):
    result = runner.invoke(args=["new-key"])
    assert result.exit_code == 0
    Fernet(result.output.strip())  # a valid key, or this raises
