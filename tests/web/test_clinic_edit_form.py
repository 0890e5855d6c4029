"""The clinic's edit form: each message next to its field and tied to it for screen
readers (``aria-describedby``, ``aria-invalid``), and no lost update: the form carries the
listing's row version, and a save over a version someone else changed since the form was
opened writes nothing and says so (409), shown with two people signed in at once."""

from __future__ import annotations

import html
import re

from referral.extensions import db
from referral.models import Provider
from tests.test_accounts import add_user, sign_in
from tests.web.test_clinic_pages import form_of
from tests.web.test_pages import csrf, text

VERSION = re.compile(r'<input type="hidden" name="version" value="(\d+)">')


def opened(client, url) -> dict:
    """The edit form as a browser holds it after opening the page: csrf token and version."""
    page = text(client.get(url))
    return {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page)[1],
            "version": VERSION.search(page)[1]}


def control(page: str, field: str) -> str:
    """The opening tag of a field's control (input, select, textarea or fieldset)."""
    return re.search(rf'<(?:input|select|textarea|fieldset)[^>]*\bid="{field}"[^>]*>', page)[0]


def test_each_message_is_beside_its_field_and_tied_to_it(app, client, make_clinic, create,
                                                         listing):
    clinic_id, token = make_clinic()
    made = create(token)
    add_user(app, clinic_id, "staff@harbor.example", role="staff")
    sign_in(client, "staff@harbor.example")
    url = f"/clinic/providers/{made['id']}/edit"
    form = {**form_of(listing), **opened(client, url), "licensed_states": "ZZ, NY",
            "zip": "123", "modalities": ["CBT", "NOPE"]}
    response = client.post(url, data=form)
    page = html.unescape(text(response))
    assert response.status_code == 422
    for field in ("licensed_states", "zip", "modalities"):
        tag = control(page, field)
        assert f'aria-describedby="{field}-error"' in tag and 'aria-invalid="true"' in tag
        message = re.search(rf'<p class="error" id="{field}-error">([^<]+)</p>', page)
        assert message, field
        # next to the field: right after an input; inside the fieldset of a group of boxes
        start, at = page.index(tag) + len(tag), page.index(message[0])
        if tag.startswith("<fieldset"):
            assert start < at < page.index("</fieldset>", start), field
        else:
            assert page[start:at].strip() == "", field
    assert "\u201cZZ\u201d is not one of the choices." in page
    assert 'aria-invalid' not in control(page, "first_name")  # only the wrong ones
    # the summary at the top links each message to its field
    assert re.search(r'<li><a href="#zip">[^<]+</a></li>', page)
    with app.app_context():
        assert db.session.get(Provider, made["id"]).licensed_states == ["MA", "NH"]


def test_a_save_over_someone_elses_change_writes_nothing(app, make_clinic, create, listing):
    clinic_id, token = make_clinic()
    made = create(token, first_name="Maya", fee_min=90, fee_max=150)
    url = f"/clinic/providers/{made['id']}/edit"
    for email in ("ana@harbor.example", "ben@harbor.example"):
        add_user(app, clinic_id, email, role="staff")
    ana, ben = app.test_client(), app.test_client()  # two people, two sessions
    sign_in(ana, "ana@harbor.example")
    sign_in(ben, "ben@harbor.example")
    form = form_of(listing)
    anas_form, bens_form = opened(ana, url), opened(ben, url)  # both open the form
    assert anas_form["version"] == bens_form["version"]
    saved = ana.post(url, data={**form, **anas_form, "fee_min": "60"})
    assert saved.status_code == 302
    lost = ben.post(url, data={**form, **bens_form, "first_name": "Mara", "fee_max": "200"})
    page = html.unescape(text(lost))
    assert lost.status_code == 409
    assert "Someone else saved this listing after you opened it, so your changes were not " \
           "saved." in page
    with app.app_context():
        stored = db.session.get(Provider, made["id"])
        assert (stored.first_name, stored.fee_min, stored.fee_max) == ("Maya", 60, 150)
        current = stored.version
    # the form now shows what is saved, at its version; saving from it works
    assert 'id="fee_min" name="fee_min" value="60"' in page and 'value="Mara"' not in page
    assert VERSION.search(page)[1] == str(current)
    again = ben.post(url, data={**form, "csrf_token": csrf(ben, url), "fee_min": "60",
                                "version": str(current), "first_name": "Mara"})
    assert again.status_code == 302
    with app.app_context():
        assert db.session.get(Provider, made["id"]).first_name == "Mara"


def test_a_form_without_its_version_saves_nothing(app, client, make_clinic, create, listing):
    clinic_id, token = make_clinic()
    made = create(token, first_name="Maya")
    add_user(app, clinic_id, "staff@harbor.example", role="staff")
    sign_in(client, "staff@harbor.example")
    url = f"/clinic/providers/{made['id']}/edit"
    for version in (None, "", "abc", "1" * 30):
        data = {**form_of(listing), "csrf_token": csrf(client, url), "first_name": "Mara"}
        if version is not None:
            data["version"] = version
        response = client.post(url, data=data)
        assert response.status_code == 422
        assert "did not say which version of the listing" in text(response)
    with app.app_context():
        assert db.session.get(Provider, made["id"]).first_name == "Maya"
