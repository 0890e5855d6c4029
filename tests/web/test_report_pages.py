"""The report pages through the test client: the provider page's freshness (the same words
as search), hidden and reported notices, the report form (thanks, plain errors tied to the
inputs, honeypot), the clinic's notice and report list with its resolve form, another
clinic's 404, and the operators' section."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from sqlalchemy import select

from referral.extensions import db
from referral.models import ListingReport, Provider
from referral.wording import REPORTED_NOTICE
from tests.test_accounts import add_user, sign_in
from tests.test_sign_up import make_operator
from tests.web.test_pages import csrf, text

SECRET_TEXT = "Vardrelline said the office closed last spring"


@pytest.fixture
def harbor(app, make_clinic, create):
    """A clinic with a signed-in admin's email and one listing."""
    clinic_id, token = make_clinic("Harbor Counseling")
    add_user(app, clinic_id, "admin@harbor.example")
    return {"id": clinic_id, "token": token, "listing": create(token)}


def file_page_report(client, provider_id, address, **form):
    """Post the page's report form; a filed report's redirect is followed (the thanks)."""
    data = {"reason": "could_not_reach", "csrf_token": csrf(client, f"/providers/{provider_id}"),
            **form}
    return client.post(f"/providers/{provider_id}/report", data=data,
                       environ_base={"REMOTE_ADDR": address}, follow_redirects=True)


def age(app, provider_id, days):
    with app.app_context():
        db.session.get(Provider, provider_id).last_verified_at = (
            dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
        db.session.commit()


def test_the_provider_page_says_freshness_as_search_does(app, client, harbor):
    pid = harbor["listing"]["id"]
    page = html.unescape(text(client.get(f"/providers/{pid}")))
    assert "Verified 0 days ago by Harbor Counseling" in page
    age(app, pid, 120)
    page = html.unescape(text(client.get(f"/providers/{pid}")))
    search = html.unescape(text(client.get("/?zip=02115")))
    assert "Not verified for 120 days" in page and "Not verified for 120 days" in search
    assert "hidden from search" not in page


def test_a_hidden_listing_page_answers_200_and_says_why(app, client, harbor):
    pid = harbor["listing"]["id"]
    age(app, pid, 400)
    response = client.get(f"/providers/{pid}")
    assert response.status_code == 200
    page = html.unescape(text(response))
    assert ("This listing is hidden from search because its clinic has not confirmed it "
            "for 400 days, more than 365 days.") in page
    assert "Not verified for 400 days" in page
    found = client.get("/api/v1/providers/search", query_string={"zip": "02115"}).json
    assert found["total"] == 0


def test_the_report_form_thanks_and_explains_errors_next_to_the_inputs(app, client, harbor):
    pid = harbor["listing"]["id"]
    page = text(client.get(f"/providers/{pid}"))
    assert "Report a problem with this listing" in page
    assert 'name="website"' in page  # the honeypot, hidden
    missing = file_page_report(client, pid, "10.1.0.1", reason="")
    assert missing.status_code == 422
    body = text(missing)
    assert 'aria-describedby="reason-error"' in body and 'id="reason-error"' in body
    assert "Choose what is wrong with the listing." in html.unescape(body)
    long = file_page_report(client, pid, "10.1.0.1", text="y" * 501)
    assert long.status_code == 422
    assert 'aria-describedby="report-text-help text-error"' in text(long)
    assert "y" * 501 in text(long)  # what they wrote is kept for them to shorten
    done = file_page_report(client, pid, "10.1.0.1", text=SECRET_TEXT)
    assert done.status_code == 200 and [r.status_code for r in done.history] == [303]
    assert done.request.path == f"/providers/{pid}" and done.request.args["reported"] == "1"
    assert "Thank you for telling us" in text(done)
    assert SECRET_TEXT not in text(done)
    # reloading the thanks is a GET: no second report
    assert "Thank you for telling us" in text(client.get(f"/providers/{pid}?reported=1"))
    with app.app_context():
        assert len(db.session.scalars(select(ListingReport)).all()) == 1


def test_a_filled_honeypot_is_thanked_and_nothing_is_stored(app, client, harbor):
    pid = harbor["listing"]["id"]
    answer = file_page_report(client, pid, "10.1.1.1", website="http://cheap-pills.example")
    assert answer.status_code == 200 and "Thank you for telling us" in text(answer)
    with app.app_context():
        assert db.session.scalars(select(ListingReport)).all() == []


def test_reported_notice_clinic_list_resolve_and_nobody_elses(app, client, harbor,
                                                              make_clinic):
    pid = harbor["listing"]["id"]
    for n in range(1, 4):
        assert file_page_report(client, pid, f"10.1.2.{n}", text=SECRET_TEXT).status_code == 200
    page = html.unescape(text(client.get(f"/providers/{pid}")))
    assert REPORTED_NOTICE in page
    search = text(client.get("/?zip=02115"))
    assert "Reported out of date" in search

    clinic = app.test_client()
    sign_in(clinic, "admin@harbor.example")
    home = text(clinic.get("/clinic"))
    assert "3 open reports" in home and f"/clinic/listings/{pid}/reports" in home
    listing_page = html.unescape(text(clinic.get(f"/clinic/listings/{pid}/reports")))
    assert listing_page.count(SECRET_TEXT) == 3
    with app.app_context():
        report_id = db.session.scalars(select(ListingReport.id)).first()
    url = f"/clinic/listings/{pid}/reports/{report_id}/resolve"
    token = csrf(clinic, f"/clinic/listings/{pid}/reports")
    bad = clinic.post(url, data={"resolution": "verified", "csrf_token": token})
    assert bad.status_code == 422 and 'aria-describedby="note-error"' in text(bad)

    other_id, _ = make_clinic("Other Clinic")
    add_user(app, other_id, "admin@other.example")
    other = app.test_client()
    sign_in(other, "admin@other.example")
    assert other.get(f"/clinic/listings/{pid}/reports").status_code == 404
    assert other.post(url, data={"resolution": "verified", "note": "mine now",
                                 "csrf_token": csrf(other, "/clinic")}).status_code == 404
    assert SECRET_TEXT not in text(other.get("/clinic"))

    done = clinic.post(url, data={"resolution": "verified", "note": "Called: all correct.",
                                  "csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200
    assert "the reports are resolved" in text(done)
    assert "No open reports." in text(done)
    assert REPORTED_NOTICE not in html.unescape(text(client.get(f"/providers/{pid}")))
    assert "open report" not in text(clinic.get("/clinic"))


def test_operators_see_reported_listings_and_decide(app, client, harbor, runner):
    pid = harbor["listing"]["id"]
    assert file_page_report(client, pid, "10.1.3.1", reason="no_longer_practicing",
                            text=SECRET_TEXT).status_code == 200
    operator = app.test_client()
    sign_in(operator, make_operator(runner))
    home = html.unescape(text(operator.get("/operator")))
    assert "Reported listings (1)" in home and SECRET_TEXT in home
    with app.app_context():
        report_id = db.session.scalars(select(ListingReport.id)).one()
    clinic = app.test_client()
    sign_in(clinic, "admin@harbor.example")
    assert clinic.post(f"/operator/reports/{report_id}/decision",
                       data={"decision": "confirm",
                             "csrf_token": csrf(clinic, "/clinic")}).status_code == 403
    answer = operator.post(f"/operator/reports/{report_id}/decision",
                           data={"decision": "confirm", "csrf_token": csrf(operator, "/operator")},
                           follow_redirects=True)
    assert answer.status_code == 200 and f"Report {report_id} is confirmed." in text(answer)
    assert client.get(f"/providers/{pid}").status_code == 404  # no longer practicing: gone


def test_a_report_from_another_site_without_the_form_token_is_refused(app, client, harbor):
    pid = harbor["listing"]["id"]
    forged = client.post(f"/providers/{pid}/report", data={"reason": "could_not_reach"},
                         environ_base={"REMOTE_ADDR": "10.1.4.1"})
    assert forged.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(ListingReport)).all() == []
