"""The clinic's referral pages through the test client: inbox markers and counts, sending
from a therapist's listing (consent required), the referral page's actions and thread,
webhook settings and the email outbox; CSRF and privacy."""

from __future__ import annotations

import re

import pytest

from referral.delivery import Worker
from referral.extensions import db
from referral.models import Referral
from tests.conftest import bearer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def text(response):
    return response.get_data(as_text=True)


def signed_in(app, token):
    """A test client signed in to the clinic pages with ``token``."""
    client = app.test_client()
    page = text(client.get("/clinic/sign-in"))
    response = client.post("/clinic/sign-in", data={
        "token": token, "csrf_token": CSRF.search(page).group(1)})
    assert response.status_code == 302
    return client


def csrf(client, url):
    return CSRF.search(text(client.get(url))).group(1)


@pytest.fixture
def clinics(app, make_clinic, create):
    _, sender = make_clinic("Harbor Therapy")
    _, receiver = make_clinic("Summit Psychiatry")
    _, outsider = make_clinic("Elsewhere Clinic")
    therapist = create(sender, last_name="Quillfeather")
    prescriber = create(receiver, last_name="Marchbanks", provider_type="psychiatric_np",
                        taxonomy_codes=["363LP0808X"], credentials="PMHNP-BC", modalities=[])
    return {"a": signed_in(app, sender), "b": signed_in(app, receiver),
            "c": signed_in(app, outsider), "therapist": therapist, "prescriber": prescriber,
            "tokens": (sender, receiver)}


def send_from_pages(clinics, patient_ref="PT-page-1", consent=True):
    a, therapist, prescriber = clinics["a"], clinics["therapist"], clinics["prescriber"]
    url = f"/clinic/refer/{therapist['id']}/to/{prescriber['id']}?patient_state=MA"
    data = {"csrf_token": csrf(a, url), "patient_ref": patient_ref, "patient_state": "MA",
            "urgency": "soon", "contact_preference": "phone", "concerns": ["depression"],
            "note": "Sleep is poor; please evaluate."}
    if consent:
        data["consent_to_coordinate"] = "true"
    return a.post(url, data=data)


def test_refer_from_a_listing_then_answer_and_talk(app, clinics):
    a, b, therapist = clinics["a"], clinics["b"], clinics["therapist"]
    home = text(a.get("/clinic"))
    assert f"/clinic/refer/{therapist['id']}" in home
    finder = a.get(f"/clinic/refer/{therapist['id']}?patient_state=MA&telehealth=true")
    assert finder.status_code == 200 and "Marchbanks" in text(finder)
    assert "Refer to Maya Marchbanks" in text(finder)
    refused = send_from_pages(clinics, consent=False)
    assert refused.status_code == 422 and "consent" in text(refused).lower()
    with app.app_context():
        assert db.session.query(Referral).count() == 0
    sent = send_from_pages(clinics)
    assert sent.status_code == 302
    referral_url = sent.headers["Location"]
    referral_id = int(referral_url.rsplit("/", 1)[1])
    # B's navigation counts it and the inbox marks it new
    inbox = text(b.get("/clinic/referrals"))
    assert "(1 new)" in inbox and 'class="marker">New' in inbox and "PT-page-1" in inbox
    page = text(b.get(referral_url))
    assert "Sleep is poor; please evaluate." in page and "Shown once the referral is accepted" \
        in page
    assert "Accept" in page and "Decline" in page and "Cancel referral" not in page
    inbox = text(b.get("/clinic/referrals"))
    assert "(1 new)" not in inbox and 'class="marker"' not in inbox  # seen now
    token = csrf(b, referral_url)
    assert b.post(f"{referral_url}/status", data={"csrf_token": token,
                                                  "status": "accepted"}).status_code == 302
    bad = b.post(f"{referral_url}/status", data={"csrf_token": token, "status": "scheduled",
                                                 "appointment_at": "2020-01-01T09:00",
                                                 "time_zone": "America/New_York"})
    assert bad.status_code == 422 and "Must be in the future" in text(bad)
    good = b.post(f"{referral_url}/status", data={
        "csrf_token": token, "status": "scheduled", "appointment_at": "2031-03-04T09:30",
        "time_zone": "America/New_York", "note": "First visit by video."})
    assert good.status_code == 302
    b.post(f"{referral_url}/messages", data={"csrf_token": token,
                                             "text": "Please send the intake summary."})
    page = text(a.get(referral_url))
    # shown in the zone it was booked in, to both clinics
    assert "Scheduled" in page and "2031-03-04 09:30 EST (America/New_York)" in page
    assert "2031-03-04 09:30 EST (America/New_York)" in text(b.get(referral_url))
    assert "Please send the intake summary." in page and "First visit by video." in page
    assert "Summit Psychiatry" in page  # the other clinic, once accepted
    assert "Cancel referral" in page and "Mark completed" not in page
    assert "(1 new)" not in text(a.get("/clinic/referrals/sent"))
    with app.app_context():
        assert db.session.get(Referral, referral_id).status == "scheduled"


def test_the_page_refuses_what_the_api_refuses(app, clinics):
    assert send_from_pages(clinics).status_code == 302
    second = send_from_pages(clinics)
    assert second.status_code == 409 and "still open" in text(second)
    with app.app_context():
        referral_id = db.session.scalars(db.select(Referral.id)).one()
    url = f"/clinic/referrals/{referral_id}"
    assert clinics["c"].get(url).status_code == 404  # outsiders see nothing
    assert clinics["c"].post(f"{url}/messages", data={
        "csrf_token": csrf(clinics["c"], "/clinic"), "text": "hi"}).status_code == 404
    # the sender cannot accept its own referral: 403 on the page, nothing changes
    token = csrf(clinics["a"], url)
    refused = clinics["a"].post(f"{url}/status", data={"csrf_token": token,
                                                       "status": "accepted"})
    assert refused.status_code == 403
    assert clinics["a"].post(f"{url}/status", data={"status": "cancelled",
                                                    "reason": "other"}).status_code == 400
    blank = clinics["a"].post(f"{url}/messages", data={"csrf_token": token, "text": "  "})
    assert blank.status_code == 422
    with app.app_context():
        assert db.session.get(Referral, referral_id).status == "requested"


def test_webhook_settings_show_the_secret_once_and_the_log(app, clinics):
    b = clinics["b"]
    token = csrf(b, "/clinic/settings/webhooks")
    bad = b.post("/clinic/settings/webhooks", data={"csrf_token": token,
                                                    "url": "http://93.184.216.34/x"})
    assert bad.status_code == 422 and "loopback" in text(bad)
    added = b.post("/clinic/settings/webhooks", data={"csrf_token": token,
                                                      "url": "http://127.0.0.1:9/hook"})
    assert added.status_code == 201
    secret = re.search(r'id="new-secret">(whsec_[^<]+)<', text(added)).group(1)
    listing = text(b.get("/clinic/settings/webhooks"))
    assert "127.0.0.1:9/hook" in listing and secret not in listing
    send_from_pages(clinics)
    with app.app_context():
        from referral.models import WebhookEndpoint
        endpoint_id = db.session.scalars(db.select(WebhookEndpoint.id)).one()
    log = text(b.get(f"/clinic/settings/webhooks/{endpoint_id}"))
    assert "referral.created" in log and "pending" in log


def test_the_outbox_shows_the_clinics_emails(app, clinics):
    send_from_pages(clinics)
    Worker(app, concurrency=2).run_until_idle()
    page = text(clinics["b"].get("/clinic/outbox"))
    assert "You have a new referral" in page and "PT-page-1" not in page
    assert "You have a new referral" not in text(clinics["a"].get("/clinic/outbox"))


def test_api_and_pages_agree_on_counts(app, clinics):
    sender, receiver = clinics["tokens"]
    client = app.test_client()
    for number in range(3):
        response = client.post("/api/v1/referrals", json={
            "therapist_id": clinics["therapist"]["id"],
            "prescriber_id": clinics["prescriber"]["id"], "patient_ref": f"PT-{number}",
            "patient_state": "MA", "contact_preference": "email",
            "consent_to_coordinate": True}, headers=bearer(sender))
        assert response.status_code == 201
    inbox = text(clinics["b"].get("/clinic/referrals"))
    assert "(3 new)" in inbox and inbox.count('class="marker">New') == 3
