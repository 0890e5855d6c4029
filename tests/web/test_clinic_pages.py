"""The clinic pages completed: add a listing, deactivate and reactivate, 'still current'
for many at once, the CSV template and export, the change history (who, when, channel,
old -> new), plain-word labels and the bad value beside each CSV row error, and a staff
person of one clinic never reaching another clinic's anything."""

from __future__ import annotations

import csv
import datetime as dt
import io

from referral.extensions import db
from referral.listing_csv import rows_to_csv
from referral.models import Provider
from referral.schemas.listings import FORM_FIELDS, LISTING_FIELDS
from tests.conftest import new_npi
from tests.test_accounts import add_user, sign_in
from tests.web.test_pages import csrf, text


def form_of(listing) -> dict:
    values = listing()
    form = {key: value for key, value in values.items() if not isinstance(value, (list, bool))}
    form.update({key: "true" for key, value in values.items() if value is True})
    for field in FORM_FIELDS:
        value = values.get(field["name"])
        if isinstance(value, list):
            form[field["name"]] = ", ".join(value) if field["widget"] == "text_list" else value
    return form


def test_add_deactivate_verify_many_export_and_history(app, make_clinic, create, listing):
    clinic_id, token = make_clinic("Lakeside")
    add_user(app, clinic_id, "staff@lakeside.example", role="staff")
    client = app.test_client()
    sign_in(client, "staff@lakeside.example")
    form = form_of(listing)
    bad = client.post("/clinic/providers/new", data={**form, "fee_min": "500",
                                                     "fee_max": "100", "npi": "1234567890",
                                                     "csrf_token": csrf(client, "/clinic")})
    page = text(bad)
    assert bad.status_code == 422 and "Lowest fee ($)" in page and "NPI" in page
    assert "fee_min" not in page.split("<main")[1].split("</form>")[0].split("<form")[0]
    with app.app_context():
        assert db.session.query(Provider).count() == 0
    added = client.post("/clinic/providers/new", data={**form, "last_name": "Added",
                                                       "csrf_token": csrf(client, "/clinic")})
    assert added.status_code == 302
    with app.app_context():
        provider = db.session.query(Provider).filter_by(last_name="Added").one()
        provider_id = provider.id
        assert provider.clinic_id == clinic_id and provider.modalities == ["CBT", "DBT"]
        old = [create(token, last_name=f"Old{n}")["id"] for n in range(2)]
        for stale_id in old:
            db.session.get(Provider, stale_id).last_verified_at -= dt.timedelta(days=200)
        db.session.commit()
    home = text(client.get("/clinic"))
    assert "Still current: all selected" in home and home.count('name="provider_id"') == 2
    client.post("/clinic/verify", data={"provider_id": old,
                                        "csrf_token": csrf(client, "/clinic")})
    assert "Every listing is current." in text(client.get("/clinic"))
    client.post(f"/clinic/providers/{provider_id}/active",
                data={"active": "false", "csrf_token": csrf(client, "/clinic")})
    assert client.get(f"/api/v1/providers/{provider_id}").status_code == 404
    client.post(f"/clinic/providers/{provider_id}/active",
                data={"active": "true", "csrf_token": csrf(client, "/clinic")})
    assert client.get(f"/api/v1/providers/{provider_id}").status_code == 200
    history = text(client.get(f"/clinic/providers/{provider_id}/history"))
    assert history.count('class="history-entry"') == 3
    assert "staff@lakeside.example" in history and "clinic pages" in history
    assert "Shown to patients: True &rarr; False" in history
    assert "Shown to patients: False &rarr; True" in history
    template = client.get("/clinic/listings/template.csv")
    assert template.mimetype == "text/csv" and "attachment" in template.headers[
        "Content-Disposition"]
    assert next(csv.reader(io.StringIO(text(template)))) == list(LISTING_FIELDS)
    exported = list(csv.DictReader(io.StringIO(text(client.get("/clinic/listings.csv")))))
    assert sorted(row["last_name"] for row in exported) == ["Added", "Old0", "Old1"]
    assert exported[0]["modalities"] == "CBT;DBT"
    # the export uploads back unchanged
    answer = client.post("/clinic/upload", data={
        "file": (io.BytesIO(text(client.get("/clinic/listings.csv")).encode()), "back.csv"),
        "csrf_token": csrf(client, "/clinic/upload")})
    assert answer.status_code == 200 and "0 created, 0 updated, 3 unchanged" in text(answer)


def test_csv_row_errors_show_the_field_in_plain_words_and_the_bad_value(app, make_clinic,
                                                                         listing):
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "a@example.org")
    client = app.test_client()
    sign_in(client, "a@example.org")
    data = rows_to_csv([listing(), listing(zip="99999", fee_min=90, fee_max=40),
                        listing(modalities=["CBT", "hypnosis"])])
    answer = client.post("/clinic/upload", data={
        "file": (io.BytesIO(data.encode()), "rows.csv"),
        "csrf_token": csrf(client, "/clinic/upload")})
    page = text(answer)
    assert answer.status_code == 422
    rows = page.split('class="row-error"')[1:]
    assert any("ZIP code" in row and "<code>99999</code>" in row for row in rows)
    assert any("Approaches" in row and "hypnosis" in row for row in rows)
    assert ">zip<" not in page and ">modalities<" not in page
    with app.app_context():
        assert db.session.query(Provider).count() == 0


def test_staff_of_one_clinic_never_reach_another_clinics_anything(app, make_clinic, create):
    a_id, _ = make_clinic("Clinic A")
    b_id, b_token = make_clinic("Clinic B")
    theirs = create(b_token, last_name="Theirs")["id"]
    add_user(app, a_id, "staff@a.example", role="staff")
    b_person = add_user(app, b_id, "boss@b.example")
    client = app.test_client()
    sign_in(client, "staff@a.example")
    token = csrf(client, "/clinic")
    for path in (f"/clinic/providers/{theirs}/edit", f"/clinic/providers/{theirs}/history"):
        assert client.get(path).status_code == 404, path
    for path, data in ((f"/clinic/providers/{theirs}/verify", {}),
                       (f"/clinic/providers/{theirs}/active", {"active": "false"}),
                       ("/clinic/verify", {"provider_id": [theirs]}),
                       (f"/clinic/users/{b_person}", {"action": "disable"})):
        assert client.post(path, data={**data, "csrf_token": token}).status_code in (403, 404)
    assert client.post(f"/clinic/providers/{theirs}/release",
                       data={"csrf_token": token}).status_code == 403
    assert "Theirs" not in text(client.get("/clinic"))
    assert "Theirs" not in text(client.get("/clinic/listings.csv"))
    with app.app_context():
        provider = db.session.get(Provider, theirs)
        assert provider.active and provider.clinic_id == b_id
        assert provider.last_verified_at is not None
    assert new_npi()  # the builder stays usable
