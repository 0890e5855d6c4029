"""Reminders for real: the weekly listing digest (who gets one, what it lists, once per
week also when two runs race), its email through a real SMTP server and its webhook
through a real receiver, the one-click "Still current" link (GET changes nothing, POST
verifies once, for that listing only, until it expires), reminders of referrals
unanswered for two business days, and the workers' daily jobs."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest

from referral import reminders
from referral.business_time import business_seconds
from referral.daily_jobs import run_daily_jobs
from referral.delivery import Worker
from referral.extensions import db
from referral.models import (
    Clinic,
    DailyRun,
    Delivery,
    Event,
    ListingLink,
    OutboxEmail,
    Provider,
    ProviderAudit,
    Referral,
    ReferralReminder,
    ReminderDigest,
)
from tests.conftest import bearer, make_app
from tests.receivers import WebhookReceiver
from tests.web.test_pages import CSRF, text

#: Listings' ages count from now (links expire in real time).
NOW = dt.datetime.now(dt.UTC)
WEEK_START = dt.datetime.combine(NOW.date() - dt.timedelta(days=NOW.weekday()), dt.time(),
                                 tzinfo=dt.UTC)
LINK = re.compile(r"https://directory\.example(/clinic/listings/(\d+)/still-current/(\w+))")


def days_ago(days):
    return NOW - dt.timedelta(days=days)


def set_listing(app, provider_id, **values):
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        for name, value in values.items():
            setattr(provider, name, value)
        db.session.commit()


@pytest.fixture
def clinic_listings(app, make_clinic, create):
    """An approved clinic (with an email address) with listings of every age, a pending
    clinic with a stale listing, and an approved clinic with only fresh listings."""
    clinic_id, token = make_clinic("Harbor Counseling")
    pending_id, pending_token = make_clinic("Pending Practice")
    _, fresh_token = make_clinic("Fresh Clinic")
    ages = {"fresh": 10, "sixty": 60, "seventy_four": 74, "seventy_six": 76, "eighty_nine": 89,
            "stale": 120, "very_stale": 400}
    made = {name: create(token, last_name=name.replace("_", "").title())["id"]
            for name in [*ages, "never", "inactive"]}
    for name, age in ages.items():
        set_listing(app, made[name], last_verified_at=days_ago(age))
    set_listing(app, made["never"], last_verified_at=None)
    set_listing(app, made["inactive"], last_verified_at=days_ago(200), active=False)
    pending_listing = create(pending_token, last_name="Pendingstale")["id"]
    set_listing(app, pending_listing, last_verified_at=days_ago(200))
    create(fresh_token, last_name="Freshonly")
    with app.app_context():
        db.session.get(Clinic, clinic_id).email = "intake@harbor.example"
        db.session.get(Clinic, pending_id).status = "pending"
        db.session.commit()
    return {"clinic_id": clinic_id, "token": token, "ids": made}


def test_period_is_the_iso_week_in_utc():
    assert reminders.period_of(NOW) == "2026-W49"
    # Sunday 23:30 in New York is already Monday in UTC: the next week
    sunday_evening = dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert reminders.period_of(sunday_evening) == "2026-W50"
    assert reminders.period_of(dt.datetime(2027, 1, 1, tzinfo=dt.UTC)) == "2026-W53"


def test_digest_lists_listings_due_within_15_days_and_stale_ones_once_a_week(
        app, clinic_listings):
    ids = clinic_listings["ids"]
    with app.app_context():
        assert reminders.send_listing_digests(NOW) == 1
        assert reminders.send_listing_digests(NOW) == 0  # rerun the same week: nothing
        sunday_night = WEEK_START + dt.timedelta(days=6, hours=23, minutes=59)
        assert reminders.send_listing_digests(sunday_night) == 0
        (digest,) = db.session.scalars(db.select(ReminderDigest)).all()
        assert (digest.clinic_id, digest.period) == (clinic_listings["clinic_id"],
                                                     reminders.period_of(NOW))
        links = {link.provider_id: link.stale
                 for link in db.session.scalars(db.select(ListingLink))}
        # 76 and 89 days: stale within 15 days; 120, 400 and never verified: stale
        assert links == {ids["seventy_six"]: False, ids["eighty_nine"]: False,
                         ids["stale"]: True, ids["very_stale"]: True, ids["never"]: True}
        (event,) = db.session.scalars(db.select(Event)).all()
        assert event.type == "listing.reminder" and event.id == digest.event_id
        assert event.data == {
            "digest_id": digest.id, "count": 5,
            "provider_ids": sorted(links),
            "stale_provider_ids": [ids["never"], ids["very_stale"], ids["stale"]]}
        # the next week: a new digest
        next_week = WEEK_START + dt.timedelta(days=7)
        assert reminders.send_listing_digests(next_week) == 1
        assert db.session.scalars(db.select(ReminderDigest.period)
                                  .order_by(ReminderDigest.id)).all() == [
            reminders.period_of(NOW), reminders.period_of(next_week)]


def test_two_runs_at_the_same_moment_send_one_digest_per_clinic(app, make_clinic, create):
    """Threads on their own connections (PostgreSQL under TEST_DATABASE_URL): both read the
    same clinics, both try to write each digest; the unique key lets one through."""
    clinics = []
    for number in range(6):
        _, token = make_clinic(f"Clinic {number}")
        listing = create(token, last_name=f"Racer{number}")["id"]
        set_listing(app, listing, last_verified_at=days_ago(100))
        clinics.append(listing)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            with app.app_context():
                barrier.wait()
                results.append(reminders.send_listing_digests(NOW))
                db.session.remove()
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(results)[1] >= 1 and sum(results) == 6
    with app.app_context():
        assert db.session.query(ReminderDigest).count() == 6
        assert db.session.query(Event).count() == 6
        assert db.session.query(ListingLink).count() == 6
        assert db.session.query(Delivery).filter_by(channel="email").count() == 6


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def test_digest_email_and_webhook_then_the_link_verifies_once(
        app, database, smtp, receiver, clinic_listings):
    from config import mail_settings

    client = app.test_client()
    token, ids = clinic_listings["token"], clinic_listings["ids"]
    hook = client.post("/api/v1/clinics/me/webhooks",
                       json={"url": receiver.url("/digest"), "event_types": ["listing.reminder"]},
                       headers=bearer(token)).json
    receiver.secrets["/digest"] = hook["secret"]
    mailing = make_app(database, SMTP_URL=smtp.url, PUBLIC_BASE_URL="https://directory.example",
                       **mail_settings(smtp.url, "dir@example.org"))
    with mailing.app_context():
        assert reminders.send_listing_digests() == 1
    Worker(mailing, concurrency=2).run_until_idle()

    (webhook,) = receiver.received
    assert webhook["verified"] and webhook["body"]["type"] == "listing.reminder"
    data = webhook["body"]["data"]
    assert set(data) == {"digest_id", "provider_ids", "stale_provider_ids", "count"}
    assert "Seventysix" not in str(webhook["body"])  # ids only: no names in events

    (mail,) = smtp.messages
    assert mail["X-Envelope-To"] == "intake@harbor.example"
    assert mail["Subject"] == "5 listings to confirm"
    body = mail.get_payload(decode=True).decode()
    for name in ("Seventysix", "Eightynine", "Stale", "Verystale", "Never"):
        assert f"Maya {name}, LCSW" in body
    for name in ("Fresh", "Sixty", "Seventyfour", "Inactive", "Pendingstale", "Freshonly"):
        assert f"Maya {name}," not in body
    assert "no patient details" in body
    links = {int(provider_id): (path, key) for path, provider_id, key in LINK.findall(body)}
    assert set(links) == {ids["seventy_six"], ids["eighty_nine"], ids["stale"],
                          ids["very_stale"], ids["never"]}
    with app.app_context():  # only the hashes are stored
        stored = set(db.session.scalars(db.select(ListingLink.key_hash)))
        assert not {key for _, key in links.values()} & stored

    stale_id = ids["stale"]
    path, key = links[stale_id]
    before = verified_at(app, stale_id)
    # GET (what an email scanner does) shows the button and changes nothing
    for _ in range(2):
        shown = client.get(path)
        assert shown.status_code == 200 and "Yes, it is still current" in text(shown)
        assert "Maya Stale" in text(shown)
    assert verified_at(app, stale_id) == before
    # a link for listing A cannot verify listing B (B's path with A's key), nor a bad key
    other = ids["very_stale"]
    other_before = verified_at(app, other)
    csrf = CSRF.search(text(shown)).group(1)
    for wrong in (f"/clinic/listings/{other}/still-current/{key}",
                  f"/clinic/listings/{stale_id}/still-current/{key[:-1]}0",
                  f"/clinic/listings/{stale_id}/still-current/{'a' * 101}"):
        assert client.get(wrong).status_code == 410
        assert client.post(wrong, data={"csrf_token": csrf}).status_code == 410
    assert verified_at(app, other) == other_before
    # without the form's CSRF token nothing happens
    assert client.post(path).status_code == 400
    assert verified_at(app, stale_id) == before
    # POST verifies, through the verify operation, audited as the link channel
    confirmed = client.post(path, data={"csrf_token": csrf})
    assert confirmed.status_code == 200 and "confirmed as current" in text(confirmed)
    assert verified_at(app, stale_id) > before
    with app.app_context():
        audit = db.session.scalars(db.select(ProviderAudit).where(
            ProviderAudit.provider_id == stale_id).order_by(ProviderAudit.id.desc())).first()
        assert (audit.action, audit.channel, audit.clinic_id) == (
            "verify", "link", clinic_listings["clinic_id"])
        assert db.session.get(Provider, stale_id).version == 3  # created, aged, verified
    # once: the second use is gone, and verifies nothing
    after = verified_at(app, stale_id)
    assert client.get(path).status_code == 410
    assert client.post(path, data={"csrf_token": csrf}).status_code == 410
    assert verified_at(app, stale_id) == after
    assert verified_at(app, other) == other_before


def verified_at(app, provider_id):
    with app.app_context():
        return db.session.get(Provider, provider_id).last_verified_at


def digest_key(app, provider_id) -> str:
    """The key of the newest digest's link for a listing, as the worker writes it."""
    with app.app_context():
        link = db.session.scalars(db.select(ListingLink).where(
            ListingLink.provider_id == provider_id).order_by(ListingLink.id.desc())).first()
        return reminders.link_key(link.digest_id, provider_id, app.config["SECRET_KEY"])


def test_a_link_expires(app, clinic_listings):
    client = app.test_client()
    provider_id = clinic_listings["ids"]["stale"]
    with app.app_context():
        reminders.send_listing_digests()
    key = digest_key(app, provider_id)
    path = f"/clinic/listings/{provider_id}/still-current/{key}"
    csrf = CSRF.search(text(client.get(path))).group(1)
    with app.app_context():
        link = db.session.scalars(db.select(ListingLink).where(
            ListingLink.provider_id == provider_id)).one()
        assert link.expires_at - link.created_at == dt.timedelta(days=14)
        link.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.session.commit()
    before = verified_at(app, provider_id)
    assert client.get(path).status_code == 410
    gone = client.post(path, data={"csrf_token": csrf})
    assert gone.status_code == 410 and "expired" in text(gone)
    assert verified_at(app, provider_id) == before


def test_a_link_of_a_listing_moved_to_another_clinic_verifies_nothing(
        app, clinic_listings, make_clinic):
    client = app.test_client()
    provider_id = clinic_listings["ids"]["stale"]
    with app.app_context():
        reminders.send_listing_digests()
    path = f"/clinic/listings/{provider_id}/still-current/{digest_key(app, provider_id)}"
    csrf = CSRF.search(text(client.get(path))).group(1)
    other_id, _ = make_clinic("New Owner")
    set_listing(app, provider_id, clinic_id=other_id)
    before = verified_at(app, provider_id)
    assert client.post(path, data={"csrf_token": csrf}).status_code == 410
    assert verified_at(app, provider_id) == before
    with app.app_context():  # the link was not used up by the refusal
        assert db.session.scalars(db.select(ListingLink.used_at).where(
            ListingLink.provider_id == provider_id)).one() is None


# ---------------------------------------------------------------------------
# Unanswered referrals


def test_business_seconds_count_weekdays_in_utc():
    friday = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)
    assert business_seconds(friday, friday + dt.timedelta(days=2)) == 14 * 3600  # to Sunday
    assert business_seconds(friday, dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC)) == \
        2 * 86400  # Tuesday 10:00
    saturday = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
    assert business_seconds(saturday, dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)) == 0
    # independently: count weekday minutes one by one over ten days
    start = dt.datetime(2026, 11, 26, 17, 45, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=10, hours=3)
    minutes, moment = 0, start
    while moment < end:
        minutes += moment.weekday() < 5
        moment += dt.timedelta(minutes=1)
    assert business_seconds(start, end) == minutes * 60


@pytest.fixture
def referral_parties(app, make_clinic, create):
    sender_id, sender = make_clinic("Sender Therapy")
    receiver_id, receiver_token = make_clinic("Receiver Psychiatry")
    with app.app_context():
        db.session.get(Clinic, receiver_id).email = "referrals@receiver.example"
        db.session.commit()
    therapist = create(sender, last_name="Sender")["id"]
    prescriber = create(receiver_token, last_name="Receiver", provider_type="psychiatric_np",
                        taxonomy_codes=["363LP0808X"], credentials="PMHNP-BC",
                        modalities=[])["id"]
    client = app.test_client()

    def refer(sent_at, patient_ref):
        response = client.post("/api/v1/referrals", json={
            "therapist_id": therapist, "prescriber_id": prescriber,
            "patient_ref": patient_ref, "patient_state": "MA", "concerns": ["insomnia"],
            "contact_preference": "phone", "consent_to_coordinate": True},
            headers=bearer(sender))
        assert response.status_code == 201, response.json
        with app.app_context():
            db.session.get(Referral, response.json["id"]).created_at = sent_at
            db.session.commit()
        return response.json["id"]

    return {"refer": refer, "receiver_id": receiver_id, "receiver": receiver_token,
            "sender_id": sender_id, "client": client}


def test_a_referral_unanswered_for_two_business_days_is_reminded_once(
        app, database, smtp, receiver, referral_parties):
    from config import mail_settings

    friday = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)
    refer, client = referral_parties["refer"], referral_parties["client"]
    friday_referral = refer(friday, "PT-friday")
    answered = refer(friday - dt.timedelta(days=1), "PT-answered")
    client.post(f"/api/v1/referrals/{answered}/status", json={"status": "accepted"},
                headers=bearer(referral_parties["receiver"]))
    hook = client.post("/api/v1/clinics/me/webhooks",
                       json={"url": receiver.url("/late"), "event_types": ["referral.reminder"]},
                       headers=bearer(referral_parties["receiver"])).json
    receiver.secrets["/late"] = hook["secret"]
    with app.app_context():
        db.session.query(Delivery).delete()
        db.session.query(Event).delete()
        db.session.commit()
        sunday = friday + dt.timedelta(days=2, hours=12)
        assert reminders.send_referral_reminders(sunday) == 0  # a Friday one is not late
        monday_evening = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC)
        assert reminders.send_referral_reminders(monday_evening) == 0
        tuesday = dt.datetime(2026, 12, 8, 10, 0, 1, tzinfo=dt.UTC)
        assert reminders.send_referral_reminders(tuesday) == 1
        assert reminders.send_referral_reminders(tuesday) == 0  # once per referral
        assert reminders.send_referral_reminders(tuesday + dt.timedelta(days=3)) == 0
        (row,) = db.session.scalars(db.select(ReferralReminder)).all()
        assert row.referral_id == friday_referral
        (event,) = db.session.scalars(db.select(Event)).all()
        assert (event.type, event.data) == ("referral.reminder",
                                            {"referral_id": friday_referral,
                                             "status": "requested"})
        assert {(d.channel, d.clinic_id) for d in db.session.scalars(db.select(Delivery))} == {
            ("webhook", referral_parties["receiver_id"]),
            ("email", referral_parties["receiver_id"])}
    mailing = make_app(database, SMTP_URL=smtp.url, PUBLIC_BASE_URL="https://directory.example",
                       **mail_settings(smtp.url, "dir@example.org"))
    Worker(mailing, concurrency=2).run_until_idle()
    (mail,) = smtp.messages
    assert mail["X-Envelope-To"] == "referrals@receiver.example"
    assert mail["Subject"] == "A referral is waiting for your answer"
    body = mail.get_payload(decode=True).decode()
    assert f"https://directory.example/clinic/referrals/{friday_referral}" in body
    assert "PT-friday" not in body and "insomnia" not in body
    (webhook,) = receiver.received
    assert webhook["verified"] and webhook["body"]["data"] == {
        "referral_id": friday_referral, "status": "requested"}


# ---------------------------------------------------------------------------
# The CLI and the workers' daily jobs


def test_remind_stale_cli_is_safe_to_repeat(app, runner, clinic_listings):
    first = runner.invoke(args=["remind-stale"])
    assert first.exit_code == 0, first.output
    assert "Sent 1 listing digests and 0 unanswered-referral reminders." in first.output
    again = runner.invoke(args=["remind-stale"])
    assert "Sent 0 listing digests and 0 unanswered-referral reminders." in again.output


def test_daily_jobs_run_once_a_day_whichever_worker_asks(app, clinic_listings):
    with app.app_context():
        first = run_daily_jobs("worker-a", NOW)
        assert first == {"expire-referrals": 0, "remind-stale": 1}
        assert run_daily_jobs("worker-b", NOW) == {}
        runs = db.session.scalars(db.select(DailyRun).order_by(DailyRun.job)).all()
        today = NOW.date().isoformat()
        assert [(r.job, r.day, r.worker, r.result) for r in runs] == [
            ("expire-referrals", today, "worker-a", 0),
            ("remind-stale", today, "worker-a", 1)]
        assert all(r.finished_at is not None for r in runs)
        # the next day both run again (a new week's digest only from Monday on)
        tomorrow = NOW + dt.timedelta(days=1)
        assert run_daily_jobs("worker-b", tomorrow) == {
            "expire-referrals": 0,
            "remind-stale": int(reminders.period_of(tomorrow) != reminders.period_of(NOW))}


def test_the_delivery_worker_runs_the_daily_jobs_by_itself(app, database, clinic_listings):
    """``make demo``: a worker with no cron puts the digest in the clinic's outbox."""
    serving = make_app(database, WORKER_DAILY_JOBS=True)
    workers = [Worker(serving, concurrency=2), Worker(serving, concurrency=2)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        import time

        deadline = time.monotonic() + 30
        subjects = []
        while not subjects and time.monotonic() < deadline:
            with serving.app_context():
                subjects = db.session.scalars(db.select(OutboxEmail.subject).where(
                    OutboxEmail.clinic_id == clinic_listings["clinic_id"])).all()
                db.session.remove()
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert subjects == ["5 listings to confirm"]
    with app.app_context():
        assert db.session.query(ReminderDigest).count() == 1
        assert {r.job for r in db.session.scalars(db.select(DailyRun))} == {
            "expire-referrals", "remind-stale"}
        body = db.session.scalars(db.select(OutboxEmail.body)).one()
        assert "/still-current/" in body
