"""A patient reports a ghost listing and its clinic resolves it, in a real browser
(Playwright, Debian's Chromium), at phone and desktop widths with an axe-core audit of
every new state: the report form, its error, the thanks, the reported notice, the clinic's
report list. Two other patients' reports are filed beforehand, so the browser's is the
third and the listing becomes reported; the clinic verifies it and the notice is gone."""

from __future__ import annotations

import html
import threading

import pytest
from werkzeug.serving import make_server

from referral import reports
from referral.extensions import db
from tests.web.test_browser import browser, serious_violations, shot  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

SECRET_TEXT = "Their phone line says the number is no longer in service"


@pytest.fixture
def report_site(app, make_clinic, create):
    """The app on a free loopback port, a clinic and its listing with two reports."""
    _, token = make_clinic("Lighthouse Counseling")
    listing = create(token, first_name="Imogen", last_name="Farrowdale")
    with app.test_request_context():
        for address in ("10.3.0.1", "10.3.0.2"):
            reports.file_report(listing["id"], "could_not_reach", None, address)
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "token": token,
           "listing": listing}
    server.shutdown()


def audited(page, name: str, width: int, found: dict) -> None:
    problems = serious_violations(page)
    if problems:
        found[name] = problems
    shot(page, f"report-{width}-{name}")


@pytest.mark.parametrize("width", [360, 1280])
def test_a_patient_reports_and_the_clinic_verifies(browser, report_site, width):  # noqa: F811
    site, found = report_site, {}
    listing_url = f"{site['url']}/providers/{site['listing']['id']}"
    patient_context = browser.new_context(viewport={"width": width, "height": 900},
                                          bypass_csp=True)
    clinic_context = browser.new_context(viewport={"width": width, "height": 900},
                                         bypass_csp=True)
    try:
        patient = patient_context.new_page()
        patient.set_default_timeout(15_000)
        patient.goto(listing_url)
        assert patient.get_by_text("Verified 0 days ago by Lighthouse Counseling").is_visible()
        assert patient.locator("#reported-notice").count() == 0
        patient.get_by_text("Report a problem with this listing").click()
        audited(patient, "form", width, found)
        patient.get_by_role("button", name="Send report").click()  # no reason chosen
        error = patient.locator("#reason-error")
        error.wait_for()
        assert "Choose what is wrong with the listing." in error.inner_text()
        group = patient.get_by_role("group", name="What is wrong?")
        assert group.get_attribute("aria-describedby") == "reason-error"
        audited(patient, "form-error", width, found)
        patient.get_by_label("They are not taking new patients").check()
        patient.get_by_label("What did you find? (optional)").fill(SECRET_TEXT)
        patient.get_by_role("button", name="Send report").click()
        patient.get_by_role("heading", name="Thank you for telling us").wait_for()
        assert SECRET_TEXT not in patient.content()
        audited(patient, "thanks", width, found)
        assert patient.evaluate("document.documentElement.scrollWidth") <= width
        patient.goto(listing_url)
        notice = patient.locator("#reported-notice")
        assert "Patients reported that this listing may be out of date." in notice.inner_text()
        audited(patient, "reported-notice", width, found)

        clinic = clinic_context.new_page()
        clinic.set_default_timeout(15_000)
        clinic.goto(site["url"] + "/clinic")
        clinic.get_by_text("Sign in with an API token instead").click()
        clinic.get_by_label("Clinic token").fill(site["token"])
        clinic.get_by_role("button", name="Sign in with the token").click()
        clinic.get_by_role("heading", name="Patients reported problems (1 listing)").wait_for()
        assert "3 open reports" in clinic.locator("#reports-title + ul").inner_text()
        audited(clinic, "clinic-home", width, found)
        clinic.get_by_role("link", name="See the reports on Imogen Farrowdale").click()
        clinic.get_by_role("heading", name="Open reports (3)").wait_for()
        assert SECRET_TEXT in html.unescape(clinic.content())
        audited(clinic, "clinic-reports", width, found)
        clinic.get_by_label("We checked: the listing is right").check()
        clinic.get_by_label("Note (what you checked or changed)").fill(
            "Called the office: the number works and she is taking patients.")
        clinic.get_by_role("button", name="Resolve the reports").click()
        clinic.get_by_text("the reports are resolved").wait_for()
        clinic.get_by_role("heading", name="Open reports (0)").wait_for()
        audited(clinic, "clinic-resolved", width, found)

        patient.goto(listing_url)
        assert patient.locator("#reported-notice").count() == 0
        assert patient.get_by_text("Verified 0 days ago by Lighthouse Counseling").is_visible()
    finally:
        patient_context.close()
        clinic_context.close()
    assert found == {}
