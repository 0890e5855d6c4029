"""The coordinated-care loop in a real browser (Playwright, Debian's Chromium): clinic A
refers a patient from its therapist's page, clinic B finds it in its inbox (and the
notification email in its outbox), accepts, schedules a time, both write in the thread,
and clinic A sees the status and the message. A delivery worker runs beside the server.
Screenshots go under ``test-artifacts/``."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from referral.delivery import Worker
from tests.web.test_browser import browser, shot  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def loop_site(app, make_clinic, create):
    """The app served on a free loopback port with a worker thread, and two clinics."""
    _, sender = make_clinic("Harbor Therapy")
    _, receiver = make_clinic("Summit Psychiatry")
    therapist = create(sender, first_name="Nadia", last_name="Quillfeather")
    prescriber = create(receiver, first_name="Owen", last_name="Marchbanks",
                        provider_type="psychiatric_np", taxonomy_codes=["363LP0808X"],
                        credentials="PMHNP-BC", modalities=[])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    stop = threading.Event()
    delivering = threading.Thread(target=Worker(app, concurrency=2).run, args=(stop,),
                                  daemon=True)
    delivering.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "sender": sender,
           "receiver": receiver, "therapist": therapist, "prescriber": prescriber}
    stop.set()
    delivering.join(timeout=30)
    server.shutdown()


def clinic_page(browser, site, token):  # noqa: F811 - the browser fixture's value
    context = browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(site["url"] + "/clinic")
    page.get_by_text("Sign in with an API token instead").click()
    page.get_by_label("Clinic token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("heading", level=1).wait_for()
    return context, page


def test_refer_accept_schedule_and_talk(browser, loop_site):  # noqa: F811
    site = loop_site
    a_context, a = clinic_page(browser, site, site["sender"])
    b_context, b = clinic_page(browser, site, site["receiver"])
    try:
        # A: from the therapist's listing, the patient's state and needs, the ranked list
        a.get_by_role("link", name="Refer a patient of Nadia Quillfeather").click()
        a.get_by_label("Patient's state").select_option("MA")
        a.get_by_label("Telehealth").check()
        a.get_by_role("button", name="Find prescribers").click()
        a.get_by_role("link", name="Refer to Owen Marchbanks").click()
        a.get_by_label("Patient reference (your clinic's, not a name)").fill("PT-2207-b")
        a.get_by_label("How the patient prefers to be contacted").select_option("phone")
        a.get_by_label("Depression").check()
        a.get_by_label("Note to the prescriber's clinic").fill("Poor sleep for months.")
        a.get_by_role("button", name="Send referral").click()
        # the browser itself refuses without consent (required checkbox): nothing is sent
        assert "/to/" in a.url
        a.get_by_label("The patient has given written consent").check()
        shot(a, "6-referral-form")
        a.get_by_role("button", name="Send referral").click()
        a.get_by_role("heading", name="Requested").wait_for()
        # B: the inbox counts and marks it, and the email waits in the outbox
        b.get_by_role("link", name="Referrals received").click()
        assert "(1 new)" in b.get_by_role("navigation", name="Clinic").inner_text()
        row = b.locator("tr", has_text="PT-2207-b")
        assert "New" in row.inner_text()
        shot(b, "6-inbox-new-referral")
        b.get_by_role("link", name="Email outbox").click()
        b.get_by_role("heading", name="You have a new referral").wait_for(timeout=20_000)
        b.get_by_role("link", name="Referrals received").click()
        b.locator("tr", has_text="PT-2207-b").get_by_role("link").click()
        assert b.get_by_text("Poor sleep for months.").is_visible()
        b.get_by_role("button", name="Accept").click()
        b.get_by_role("heading", name="Accepted").wait_for()
        assert "Harbor Therapy" in b.locator("#counterpart").inner_text()
        b.get_by_label("Appointment date and time").fill("2031-03-04T09:30")
        b.get_by_label("Time zone").select_option("America/New_York")
        b.get_by_role("button", name="Schedule").click()
        b.get_by_role("heading", name="Scheduled").wait_for()
        b.get_by_label("Message", exact=True).fill(
            "First visit by video; please send the intake notes.")
        b.get_by_role("button", name="Send message").click()
        b.get_by_text("First visit by video; please send the intake notes.").wait_for()
        shot(b, "6-referral-scheduled")
        # A: sees the status, the time and the message, and answers
        a.get_by_role("link", name="Referrals sent").click()
        a.locator("tr", has_text="PT-2207-b").get_by_role("link").click()
        a.get_by_role("heading", name="Scheduled").wait_for()
        # in the zone it was booked in (09:30 in New York is 14:30 UTC)
        assert a.locator("#appointment").inner_text() == "2031-03-04 09:30 EST (America/New_York)"
        assert a.get_by_text("First visit by video; please send the intake notes.").is_visible()
        assert "Summit Psychiatry" in a.locator("#counterpart").inner_text()
        a.get_by_label("Message", exact=True).fill("Intake notes sent by fax this morning.")
        a.get_by_role("button", name="Send message").click()
        a.get_by_text("Intake notes sent by fax this morning.").wait_for()
        shot(a, "6-sender-sees-schedule-and-thread")
        b.reload()
        assert b.get_by_text("Intake notes sent by fax this morning.").is_visible()
    finally:
        a_context.close()
        b_context.close()
