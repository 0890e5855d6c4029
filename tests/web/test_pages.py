"""The pages through the test client: content, bad input, CSRF, the clinic's work."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from referral.extensions import db
from referral.listing_csv import rows_to_csv
from referral.models import Provider

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client, url):
    return CSRF.search(client.get(url, follow_redirects=True).get_data(as_text=True)).group(1)


def stale_section(page: str) -> str:
    return page.split('id="stale-title"')[1].split('id="current-title"')[0]


def text(response):
    return response.get_data(as_text=True)


def test_search_page_form_footer_and_results(directory):
    app, _ = directory
    client = app.test_client()
    empty = client.get("/")
    assert empty.status_code == 200
    page = text(empty)
    for label in ("ZIP code", "Distance (miles)", "Concern", "Approach", "Telehealth",
                  "In person", "Most I can pay", "Sliding-scale", "Insurance", "Language",
                  "Age group"):
        assert label in page
    assert "Call or text 988" in page and "<label for=\"zip\">" in page
    assert "Exposure and response prevention" in page  # modality notes
    results = text(client.get("/?zip=10001&concern=ocd"))
    assert "providers found" in results and "Verified" in results and "miles away" in results
    assert 'class="crisis"' not in results


def test_crisis_text_shows_the_panel_first(directory):
    app, _ = directory
    page = text(app.test_client().get("/?q=I+want+to+end+my+life&zip=10001"))
    assert 'role="alert"' in page
    assert page.index('class="crisis"') < page.index("<h1>")


@pytest.mark.parametrize("query", ["zip=00000", "zip=abc", "radius_miles=900&zip=10001",
                                   "max_fee=-4", "telehealth=true", "modality=reiki",
                                   "in_person=true", "page=0&zip=10001", "language=xx"])
def test_bad_form_values_rerender_with_messages(directory, query):
    app, _ = directory
    response = app.test_client().get("/?" + query)
    assert response.status_code == 422
    assert 'class="error"' in text(response) and "<form" in text(response)


def test_provider_page_and_coordinating_prescribers(directory):
    app, providers = directory
    client = app.test_client()
    now = dt.datetime.now(dt.UTC)
    therapist = next(p for p in providers if p.role == "therapist" and p.active and p.zip
                     and now - p.last_verified_at < 300 * dt.timedelta(days=1))
    page = text(client.get(f"/providers/{therapist.id}"))
    assert therapist.last_name in page and "Licensed in" in page and "Contact" in page
    assert "Prescribers who coordinate with this therapist" in page
    missing = client.get("/providers/99999999")
    assert missing.status_code == 404 and "<h1>404" in text(missing)


def test_match_page(directory):
    app, _ = directory
    client = app.test_client()
    page = text(client.get("/match?zip=10001&concern=ocd"))
    assert "Pair 1" in page and "Why this pair" in page and "suited to OCD" in page
    bad = client.get("/match?concern=ocd")
    assert bad.status_code == 422 and "zip" in text(bad).lower()


@pytest.mark.parametrize("path", ["/?q=%00", "/?q=" + "x" * 500, "/?zip=%F0%9F%99%82",
                                  "/match?zip=10001&limit=9999", "/?sort=random",
                                  "/?per_page=-1", "/match?max_combined_fee=abc&zip=10001"])
def test_odd_input_never_500(directory, path):
    app, _ = directory
    assert app.test_client().get(path).status_code < 500


def test_clinic_journey_without_a_browser(app, client, make_clinic, create, listing):
    _, token = make_clinic("Lakeside Practice")
    stale = create(token, last_name="Oldlisting")
    with app.app_context():
        db.session.get(Provider, stale["id"]).last_verified_at -= dt.timedelta(days=200)
        db.session.commit()
    assert client.get("/clinic").status_code == 302
    assert client.post("/clinic/sign-in", data={"token": token}).status_code == 400  # no CSRF
    wrong = client.post("/clinic/sign-in", data={"token": "mhd_wrong",
                                                 "csrf_token": csrf(client, "/clinic/sign-in")})
    assert wrong.status_code == 401
    signed = client.post("/clinic/sign-in", data={"token": token,
                                                  "csrf_token": csrf(client, "/clinic/sign-in")})
    assert signed.status_code == 302
    home = text(client.get("/clinic"))
    assert "Needs checking" in home and "Oldlisting" in stale_section(home)
    # upload with a bad row: nothing written, the row's error shown
    rows = [listing(last_name="Newone"), listing(last_name="Broken", zip="99999")]
    token_value = csrf(client, "/clinic/upload")
    import io
    bad = client.post("/clinic/upload", data={
        "csrf_token": token_value, "file": (io.BytesIO(rows_to_csv(rows).encode()), "l.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 422 and "Nothing was saved" in text(bad)
    assert re.search(r"<td>2</td><td>ZIP code</td><td><code>", text(bad))  # plain words
    with app.app_context():
        assert db.session.query(Provider).count() == 1
    rows[1]["zip"] = "02116"
    good = client.post("/clinic/upload", data={
        "csrf_token": token_value, "file": (io.BytesIO(rows_to_csv(rows).encode()), "l.csv")},
        content_type="multipart/form-data")
    assert good.status_code == 200 and "2 created" in text(good)
    # still current
    client.post(f"/clinic/providers/{stale['id']}/verify", data={"csrf_token": token_value})
    home = text(client.get("/clinic"))
    assert "Oldlisting" not in stale_section(home) and "Oldlisting" in home
    # edit: a bad value comes back with a message, a good one is saved
    form = {"csrf_token": token_value, "first_name": "Maya", "last_name": "Okafor",
            "provider_type": "clinical_social_worker", "address_line1": "1 Main St",
            "state": "MA", "zip": "02115", "licensed_states": "MA", "fee_min": "300",
            "fee_max": "100", "in_person": "true", "modalities": ["CBT"]}
    form["version"] = re.search(r'name="version" value="(\d+)"', text(client.get(
        f"/clinic/providers/{stale['id']}/edit")))[1]
    bad_edit = client.post(f"/clinic/providers/{stale['id']}/edit", data=form)
    assert bad_edit.status_code == 422 and "fee_min" in text(bad_edit).lower().replace(" ", "_")
    form["fee_min"] = "90"
    assert client.post(f"/clinic/providers/{stale['id']}/edit", data=form).status_code == 302
    with app.app_context():
        saved = db.session.get(Provider, stale["id"])
        assert (saved.fee_min, saved.fee_max, saved.modalities) == (90, 100, ["CBT"])
    # another clinic's listing is not reachable
    _, other = make_clinic("Other")
    other_listing = create(other, last_name="Theirs")
    assert client.get(f"/clinic/providers/{other_listing['id']}/edit").status_code == 404


def test_pages_need_nothing_the_content_security_policy_forbids(directory):
    app, _ = directory
    client = app.test_client()
    for path in ("/", "/?zip=10001", "/match?zip=10001&concern=ocd", "/clinic/sign-in"):
        response = client.get(path)
        page = text(response)
        assert 'style="' not in page and "<script" not in page and "http://" not in page
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_upload_page_keeps_the_bulk_row_limit(app, client, make_clinic, listing,
                                                  monkeypatch):
    import io

    monkeypatch.setitem(app.config, "BULK_MAX_ROWS", 2)
    _, token = make_clinic()
    client.post("/clinic/sign-in", data={"token": token,
                                         "csrf_token": csrf(client, "/clinic/sign-in")})
    rows = [listing(), listing(), listing()]
    answer = client.post("/clinic/upload", data={
        "csrf_token": csrf(client, "/clinic/upload"),
        "file": (io.BytesIO(rows_to_csv(rows).encode()), "three.csv")},
        content_type="multipart/form-data")
    assert answer.status_code == 422
    assert "At most 2 listings per upload; this one has 3." in text(answer)
    with app.app_context():
        assert db.session.query(Provider).count() == 0


def test_sign_out_ends_the_session_on_the_server(app, make_clinic):
    _, token = make_clinic()
    browser = app.test_client()
    browser.post("/clinic/sign-in", data={"token": token,
                                          "csrf_token": csrf(browser, "/clinic/sign-in")})
    assert browser.get("/clinic").status_code == 200
    captured = browser.get_cookie("session").value  # e.g. copied by someone else
    browser.post("/clinic/sign-out", data={"csrf_token": csrf(browser, "/clinic")})
    thief = app.test_client()
    thief.set_cookie("session", captured)
    answer = thief.get("/clinic")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/clinic/sign-in")


def test_a_session_expires(app, make_clinic, monkeypatch):
    from referral.models import ClinicSession

    _, token = make_clinic()
    browser = app.test_client()
    browser.post("/clinic/sign-in", data={"token": token,
                                          "csrf_token": csrf(browser, "/clinic/sign-in")})
    assert browser.get("/clinic").status_code == 200
    with app.app_context():
        row = db.session.query(ClinicSession).one()
        assert row.expires_at - row.created_at == dt.timedelta(hours=12)
        row.expires_at = row.created_at
        db.session.commit()
    assert browser.get("/clinic").status_code == 302
