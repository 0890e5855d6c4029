"""Patients' reports on listings, for real (database, HTTP, index, webhook receiver, SMTP):
the reported rule (3 distinct reporters within 30 days), the clinic's resolution, the
operators' decisions, limits, privacy of the text, ranking and ``verification``."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from referral.delivery import Worker
from referral.extensions import db
from referral.models import (
    ActivityLog,
    Clinic,
    Delivery,
    Event,
    ListingReport,
    OutboxEmail,
    Provider,
    ProviderAudit,
)
from referral.reports import reporter_key
from tests.conftest import assert_error_shape, bearer, make_app
from tests.receivers import WebhookReceiver
from tests.web.test_pages import csrf

SECRET_TEXT = "Zelqorbin answered and said she retired in March"


def reports_url(provider_id: int) -> str:
    return f"/api/v1/providers/{provider_id}/reports"


def report(client, provider_id: int, address: str, reason: str = "could_not_reach",
           **extra):
    return client.post(reports_url(provider_id), json={"reason": reason, **extra},
                       environ_base={"REMOTE_ADDR": address})


def reported(client, provider_id: int) -> bool:
    response = client.get(f"/api/v1/providers/{provider_id}")
    assert response.status_code == 200, response.json
    return response.json["verification"]["reported"]


@pytest.fixture
def clinic(make_clinic):
    return make_clinic("Harbor Counseling")


@pytest.fixture
def listed(clinic, create):
    """One active listing of the clinic."""
    return create(clinic[1])


def test_two_distinct_reporters_do_not_flag_and_three_do(client, listed, app):
    for address in ("10.0.0.1", "10.0.0.2"):
        answer = report(client, listed["id"], address, text=SECRET_TEXT)
        assert answer.status_code == 201, answer.json
        assert set(answer.json) == {"id", "status"} and answer.json["status"] == "open"
    assert reported(client, listed["id"]) is False
    assert report(client, listed["id"], "10.0.0.3").status_code == 201
    assert reported(client, listed["id"]) is True
    with app.app_context():
        provider = db.session.get(Provider, listed["id"])
        assert provider.reported_at is not None
        keys = db.session.scalars(select(ListingReport.reporter_key)).all()
        assert len(set(keys)) == 3 and all(len(key) == 64 for key in keys)
        assert reporter_key("10.0.0.1", listed["id"]) in keys
        stored = " ".join(str(v) for r in db.session.scalars(select(ListingReport))
                          for v in vars(r).values())
        assert "10.0.0.1" not in stored and "Zelqorbin" not in stored  # hashed, encrypted


def test_three_reports_from_one_address_do_not_flag(client, listed):
    for _ in range(3):
        assert report(client, listed["id"], "10.0.1.1").status_code == 201
    assert reported(client, listed["id"]) is False
    # the same address on another listing is another reporter there, not here
    assert report(client, listed["id"], "10.0.1.2").status_code == 201
    assert reported(client, listed["id"]) is False


def test_reports_older_than_30_days_do_not_count(client, listed, app):
    for address in ("10.0.2.1", "10.0.2.2"):
        assert report(client, listed["id"], address).status_code == 201
    with app.app_context():
        for old in db.session.scalars(select(ListingReport)):
            old.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
        db.session.commit()
    assert report(client, listed["id"], "10.0.2.3").status_code == 201
    assert reported(client, listed["id"]) is False
    assert report(client, listed["id"], "10.0.2.4").status_code == 201
    assert reported(client, listed["id"]) is False  # 2 within the window
    assert report(client, listed["id"], "10.0.2.5").status_code == 201
    assert reported(client, listed["id"]) is True


def flag(client, provider_id: int, prefix: str = "10.0.3") -> None:
    for n in range(1, 4):
        assert report(client, provider_id, f"{prefix}.{n}", text=SECRET_TEXT).status_code == 201
    assert reported(client, provider_id) is True


def test_the_clinics_verification_clears_it_and_resolves_the_reports(client, listed, clinic,
                                                                     app):
    flag(client, listed["id"])
    answer = client.post(f"/api/v1/providers/{listed['id']}/verify", headers=bearer(clinic[1]))
    assert answer.status_code == 200
    assert answer.json["verification"]["reported"] is False
    assert reported(client, listed["id"]) is False
    with app.app_context():
        rows = db.session.scalars(select(ListingReport)).all()
        assert {(r.status, r.resolution) for r in rows} == {("resolved", "verified")}
        audit = db.session.scalars(select(ProviderAudit).where(
            ProviderAudit.provider_id == listed["id"], ProviderAudit.action == "verify")).one()
        assert audit.changes["reports_resolved"] == {"old": 3, "new": 0}
    # new reports start counting again from nothing
    assert report(client, listed["id"], "10.0.3.9").status_code == 201
    assert reported(client, listed["id"]) is False


def test_an_edit_fixes_it(client, listed, clinic):
    flag(client, listed["id"])
    answer = client.patch(f"/api/v1/providers/{listed['id']}", json={"phone": "6175550123"},
                          headers=bearer(clinic[1]))
    assert answer.status_code == 200
    assert answer.json["verification"]["reported"] is False
    mine = client.get("/api/v1/clinics/me/reports?status=all", headers=bearer(clinic[1])).json
    assert {r["resolution"] for r in mine} == {"fixed"}


def test_the_clinic_reads_and_resolves_its_reports_and_nobody_else_can(client, listed, clinic,
                                                                       make_clinic):
    flag(client, listed["id"])
    _, other = make_clinic("Other Clinic")
    mine = client.get("/api/v1/clinics/me/reports", headers=bearer(clinic[1]))
    assert mine.status_code == 200
    assert [r["text"] for r in mine.json] == [SECRET_TEXT] * 3
    assert client.get("/api/v1/clinics/me/reports", headers=bearer(other)).json == []
    report_id = mine.json[0]["id"]
    path = f"{reports_url(listed['id'])}/{report_id}/resolve"
    body = {"resolution": "verified", "note": "Called her: still practicing, number right."}
    assert_error_shape(client.post(path, json=body, headers=bearer(other)), 404)
    assert_error_shape(client.post(path, json=body), 401)
    assert_error_shape(client.post(path, json={**body, "resolution": "ignored"},
                                   headers=bearer(clinic[1])), 422)
    assert_error_shape(client.post(path, json={"resolution": "fixed"},
                                   headers=bearer(clinic[1])), 422)  # a note is needed
    assert_error_shape(client.post(f"{reports_url(listed['id'] + 1)}/{report_id}/resolve",
                                   json=body, headers=bearer(clinic[1])), 404)
    done = client.post(path, json=body, headers=bearer(clinic[1]))
    assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["resolution"], done.json["resolution_note"]) == (
        "resolved", "verified", body["note"])
    assert reported(client, listed["id"]) is False
    assert client.get("/api/v1/clinics/me/reports", headers=bearer(clinic[1])).json == []
    assert_error_shape(client.post(path, json=body, headers=bearer(clinic[1])), 409)


def test_bad_reports_are_refused_in_the_error_shape(client, listed, clinic, app):
    url = reports_url(listed["id"])
    here = {"REMOTE_ADDR": "10.0.4.1"}
    bad = assert_error_shape(client.post(url, json={"reason": "rude"}, environ_base=here), 422)
    assert "reason" in bad["errors"]["json"]
    assert_error_shape(client.post(url, json={}, environ_base=here), 422)
    long = assert_error_shape(client.post(url, json={"reason": "other", "text": "x" * 501},
                                          environ_base=here), 422)
    assert "text" in long["errors"]["json"]
    control = client.post(url, json={"reason": "other", "text": "bad\u202etext"},
                          environ_base=here)
    assert_error_shape(control, 422)
    # the API's honeypot: a field the schema does not know (bots fill every field)
    assert_error_shape(client.post(url, json={"reason": "other", "website": "http://spam"},
                                   environ_base=here), 422)
    assert_error_shape(client.post(reports_url(999_999), json={"reason": "other"},
                                   environ_base=here), 404)
    client.delete(f"/api/v1/providers/{listed['id']}", headers=bearer(clinic[1]))
    assert_error_shape(client.post(url, json={"reason": "other"}, environ_base=here), 404)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ListingReport)) == 0
    # cleaned text is what is kept: 500 characters after cleaning is fine
    assert client.post(reports_url(listed["id"]), json={"reason": "other"},
                       environ_base=here).status_code == 404  # still inactive


@pytest.fixture
def limited(app, database):
    """A second app on the same database with tiny report limits."""
    return make_app(database, RATE_LIMITS=True, RATELIMIT_REPORTS_ADDRESS="2 per minute",
                    RATELIMIT_REPORTS_LISTING="3 per minute")


def test_reports_are_limited_per_address_and_per_listing(limited, create, clinic):
    first, second, third, fourth = (create(clinic[1])["id"] for _ in range(4))
    client = limited.test_client()
    statuses = [report(client, pid, "10.0.5.1").status_code for pid in (first, second, third)]
    assert statuses == [201, 201, 429]
    body = assert_error_shape(report(client, first, "10.0.5.1"), 429)
    assert "Too many requests" in body["message"]
    # the page shares the address's budget
    token = csrf(client, f"/providers/{third}")
    page = client.post(f"/providers/{third}/report", data={"reason": "other",
                                                           "csrf_token": token},
                       environ_base={"REMOTE_ADDR": "10.0.5.1"})
    assert page.status_code == 429
    # per listing: a fourth report on one listing, each from another address, is refused
    assert [report(client, fourth, f"10.0.6.{n}").status_code for n in range(1, 5)] == [
        201, 201, 201, 429]
    assert report(client, second, "10.0.6.9").status_code == 201


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def test_the_clinic_is_notified_by_webhook_and_email_without_the_text(
        client, listed, clinic, app, receiver, mailing, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        db.session.get(Clinic, clinic[0]).email = "intake@harbor.example"
        db.session.commit()
    hook = client.post("/api/v1/clinics/me/webhooks",
                       json={"url": receiver.url("/harbor"), "event_types": ["listing.reported"]},
                       headers=bearer(clinic[1]))
    assert hook.status_code == 201, hook.json
    receiver.secrets["/harbor"] = hook.json["secret"]
    filed = [report(client, listed["id"], f"10.0.7.{n}", reason="not_accepting",
                    text=SECRET_TEXT).json["id"] for n in range(1, 4)]
    Worker(mailing, concurrency=2).run_until_idle()
    bodies = sorted((e["body"] for e in receiver.received), key=lambda b: b["data"]["report_id"])
    assert all(e["verified"] for e in receiver.received)
    assert [(b["type"], b["data"]) for b in bodies] == [
        ("listing.reported", {"provider_id": listed["id"], "report_id": rid,
                              "reason": "not_accepting", "reported": rid == filed[-1]})
        for rid in filed]
    mails = [m for m in smtp.messages if m["X-Envelope-To"] == "intake@harbor.example"]
    assert len(mails) == 3
    assert {m["Subject"] for m in mails} == {"A patient reported a problem with a listing"}
    assert f"/clinic/listings/{listed['id']}/reports" in mails[0].get_payload()
    with app.app_context():
        events = db.session.scalars(select(Event)).all()
        deliveries = db.session.scalars(select(Delivery)).all()
        assert {e.type for e in events} == {"listing.reported"}
        assert {d.channel for d in deliveries} == {"webhook", "email"}
        assert db.session.scalar(select(db.func.count()).select_from(OutboxEmail)) == 0
        everything = " ".join([str(e.data) for e in events] +
                              [str(vars(d)) for d in deliveries])
    raw = str([e["body"] for e in receiver.received]) + "".join(
        m.as_string() for m in smtp.messages) + everything + caplog.text
    assert "Zelqorbin" not in raw


def test_operators_confirm_and_dismiss_and_a_confirmed_ghost_is_deactivated(
        client, create, clinic, app, runner):
    ghost = create(clinic[1])["id"]
    other = create(clinic[1])["id"]
    gone = report(client, ghost, "10.0.8.1", reason="no_longer_practicing").json["id"]
    wrong = report(client, other, "10.0.8.1").json["id"]
    dismissed = runner.invoke(args=["operator", "decide-report", str(wrong), "dismiss"])
    assert dismissed.exit_code == 0, dismissed.output
    assert f"Report {wrong} on listing {other} is dismissed." in dismissed.output
    assert reported(client, other) is False
    confirmed = runner.invoke(args=["operator", "decide-report", str(gone), "confirm"])
    assert confirmed.exit_code == 0, confirmed.output
    assert client.get(f"/api/v1/providers/{ghost}").status_code == 404  # deactivated
    again = runner.invoke(args=["operator", "decide-report", str(gone), "dismiss"])
    assert again.exit_code != 0 and "confirmed already" in again.output
    with app.app_context():
        audit = db.session.scalars(select(ProviderAudit).where(
            ProviderAudit.provider_id == ghost, ProviderAudit.action == "deactivate")).one()
        assert audit.channel == "cli" and audit.changes["active"] == {"old": True,
                                                                     "new": False}
        actions = set(db.session.scalars(select(ActivityLog.action)))
        assert {"report_confirmed", "report_dismissed"} <= actions


def test_dismissing_one_of_three_takes_the_flag_away(client, listed, app, runner):
    flag(client, listed["id"], "10.0.9")
    with app.app_context():
        first = db.session.scalars(select(ListingReport.id).order_by(ListingReport.id)).first()
    assert runner.invoke(args=["operator", "decide-report", str(first), "dismiss"]).exit_code == 0
    assert reported(client, listed["id"]) is False


def test_verification_is_on_every_listing_output(client, listed, clinic):
    expected = {"at", "by", "stale", "reported"}
    one = client.get(f"/api/v1/providers/{listed['id']}").json["verification"]
    assert set(one) == expected and one["by"] == "Harbor Counseling"
    assert one["stale"] is False and one["reported"] is False and one["at"]
    page = client.get("/api/v1/providers").json["items"][0]["verification"]
    assert page == one
    found = client.get("/api/v1/providers/search", query_string={"zip": "02115"}).json
    assert found["items"][0]["verification"] == one
    mine = client.get("/api/v1/clinics/me/providers", headers=bearer(clinic[1])).json
    assert mine["items"][0]["verification"] == one
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    assert set(schema["Verification"]["properties"]) == expected


def test_a_reported_listing_ranks_after_verified_ones_like_a_stale_one(client, create, clinic,
                                                                     app):
    # the best fit (no wait) would rank first; once reported it ranks after the others
    best = create(clinic[1], last_name="Best", wait_days=0)["id"]
    middle = create(clinic[1], last_name="Middle", wait_days=20)["id"]
    worst = create(clinic[1], last_name="Worst", wait_days=50)["id"]

    def order(**extra):
        found = client.get("/api/v1/providers/search",
                           query_string={"zip": "02115", **extra}).json["items"]
        return [item["id"] for item in found]

    assert order() == [best, middle, worst]
    flag(client, best, "10.0.10")
    assert order() == [middle, worst, best]
    assert order(sort="fee") [-1] == best and order(sort="availability")[-1] == best
    item = client.get("/api/v1/providers/search", query_string={"zip": "02115"}).json["items"][-1]
    assert item["verification"]["reported"] is True and item["stale"] is False
    # a stale listing and a reported one share the place after the verified ones
    with app.app_context():
        db.session.get(Provider, middle).last_verified_at = (
            dt.datetime.now(dt.UTC) - dt.timedelta(days=120))
        db.session.commit()
    assert order()[0] == worst and set(order()[1:]) == {middle, best}


def test_the_index_learns_reported_from_the_change_log(client, listed, app):
    from referral.search_sync import SearchState

    flag(client, listed["id"], "10.0.11")
    with app.app_context(), db.engine.connect() as connection:
        other_node = SearchState(app.config["INDEX_DIR"] + "-other-node")
        table = other_node.refresh_table(connection)
        row = table.row_of_id[listed["id"]]
        assert bool(table.columns["reported"][row]) is True
