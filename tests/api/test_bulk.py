"""Bulk upsert of a clinic's listings: JSON and CSV, all or nothing, dry runs."""

import io

import pytest

from referral.extensions import db
from referral.listing_csv import rows_to_csv
from referral.models import Provider, ProviderAudit
from tests.conftest import assert_error_shape, bearer

URL = "/api/v1/providers/bulk"


def snapshot(app):
    """Every listing and audit row, as plain tuples, to prove nothing changed."""
    with app.app_context():
        providers = sorted((p.npi, p.first_name, p.wait_days, p.fee_min, p.active,
                            p.last_verified_at) for p in db.session.query(Provider))
        return providers, db.session.query(ProviderAudit).count()


def test_json_upsert_counts_created_updated_unchanged(app, client, make_clinic, listing):
    _, token = make_clinic()
    rows = [listing() for _ in range(3)]
    result = client.post(URL, json=rows, headers=bearer(token))
    assert result.status_code == 200, result.json
    assert result.json == {"created": 3, "updated": 0, "unchanged": 0, "dry_run": False}
    rows[0]["wait_days"] = 21
    rows.append(listing())
    result = client.post(URL, json=rows, headers=bearer(token)).json
    assert (result["created"], result["updated"], result["unchanged"]) == (1, 1, 2)
    again = client.post(URL, json=rows, headers=bearer(token)).json
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 4)
    with app.app_context():
        updated = db.session.query(Provider).filter_by(npi=rows[0]["npi"]).one()
        assert updated.wait_days == 21
        actions = [a.action for a in db.session.query(ProviderAudit).filter_by(
            provider_id=updated.id).order_by(ProviderAudit.id)]
        assert actions == ["create", "update"]


def test_one_bad_row_writes_nothing_and_reports_every_rows_errors(app, client, make_clinic,
                                                                 listing):
    _, token = make_clinic()
    existing = listing()
    client.post(URL, json=[existing], headers=bearer(token))
    before = snapshot(app)
    rows = [dict(existing, wait_days=3), listing(), listing(fee_min=500, fee_max=100),
            listing(), listing(npi="1234567890", modalities=["reiki"]), "not an object"]
    response = client.post(URL, json=rows, headers=bearer(token))
    body = assert_error_shape(response, 422)
    errors = body["errors"]["rows"]
    assert {(e["row"], e["field"]) for e in errors} == {
        (3, "fee_min"), (5, "npi"), (5, "modalities[0]"), (6, "_row")}
    assert all(set(e) == {"row", "field", "message"} for e in errors)
    assert "nothing was written" in body["message"]
    assert snapshot(app) == before


def test_dry_run_validates_without_writing(app, client, make_clinic, listing):
    _, token = make_clinic()
    before = snapshot(app)
    result = client.post(URL + "?dry_run=true", json=[listing(), listing()],
                         headers=bearer(token))
    assert result.json == {"created": 2, "updated": 0, "unchanged": 0, "dry_run": True}
    assert snapshot(app) == before
    bad = client.post(URL + "?dry_run=true", json=[listing(zip="99999")], headers=bearer(token))
    assert assert_error_shape(bad, 422)["errors"]["rows"][0]["field"] == "zip"


def test_verify_option_attests_unchanged_rows(app, client, make_clinic, listing):
    import datetime as dt
    _, token = make_clinic()
    row = listing()
    client.post(URL, json=[row], headers=bearer(token))
    old = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with app.app_context():
        db.session.query(Provider).one().last_verified_at = old
        db.session.commit()
    assert client.post(URL, json=[row], headers=bearer(token)).json["unchanged"] == 1
    with app.app_context():
        assert db.session.query(Provider).one().last_verified_at == old
    assert client.post(URL + "?verify=true", json=[row], headers=bearer(token)).json[
        "unchanged"] == 1
    with app.app_context():
        assert db.session.query(Provider).one().last_verified_at > old


def test_duplicate_npis_and_other_clinics_npis_are_row_errors(app, client, make_clinic,
                                                             listing):
    _, mine = make_clinic("Mine")
    _, theirs = make_clinic("Theirs")
    taken = listing()
    client.post(URL, json=[taken], headers=bearer(theirs))
    before = snapshot(app)
    twin = listing()
    response = client.post(URL, json=[twin, dict(twin), dict(taken)], headers=bearer(mine))
    errors = assert_error_shape(response, 422)["errors"]["rows"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "npi"), (3, "npi")]
    assert "row 1" in errors[0]["message"]
    assert snapshot(app) == before


def test_csv_upload_as_body_and_as_file(app, client, make_clinic, listing):
    _, token = make_clinic()
    rows = [listing(), listing(modalities=["CBT", "EMDR"], insurance=[])]
    csv_text = rows_to_csv(rows)
    response = client.post(URL, data=csv_text, content_type="text/csv", headers=bearer(token))
    assert response.status_code == 200, response.json
    assert response.json["created"] == 2
    file_response = client.post(URL, data={"file": (io.BytesIO(csv_text.encode()), "l.csv")},
                                content_type="multipart/form-data", headers=bearer(token))
    assert file_response.json["unchanged"] == 2
    with app.app_context():
        stored = db.session.query(Provider).filter_by(npi=rows[1]["npi"]).one()
        assert stored.modalities == ["CBT", "EMDR"] and stored.insurance == []


def test_csv_row_errors_are_numbered_from_the_first_data_row(app, client, make_clinic,
                                                            listing):
    _, token = make_clinic()
    csv_text = rows_to_csv([listing(), listing(fee_max=9999), listing()])
    csv_text += "1234567893,Extra,Cells,LCSW" + ",x" * 40 + "\r\n"
    response = client.post(URL, data=csv_text, content_type="text/csv", headers=bearer(token))
    errors = assert_error_shape(response, 422)["errors"]["rows"]
    assert (2, "fee_max") in {(e["row"], e["field"]) for e in errors}
    assert any(e["row"] == 4 and e["field"] == "_row" for e in errors)
    assert snapshot(app) == ([], 0)


@pytest.mark.parametrize("data, content_type, fragment", [
    ("npi,first_name,favorite_color\r\n1,a,b\r\n", "text/csv", "favorite_color"),
    ("", "text/csv", "empty"),
    (b"\xff\xfe\x00bad", "text/csv", "UTF-8"),
    ('{"not": "an array"}', "application/json", "array"),
    ("[1, 2", "application/json", "array"),
    ("[]", "application/json", "no rows"),
    ("npi\n", "text/plain", "Send application/json"),
])
def test_malformed_uploads_are_422(client, make_clinic, data, content_type, fragment):
    _, token = make_clinic()
    response = client.post(URL, data=data, content_type=content_type, headers=bearer(token))
    body = assert_error_shape(response, 422)
    assert fragment.lower() in (body["message"] + str(body["errors"])).lower()


def test_row_limit(app, client, make_clinic, listing):
    _, token = make_clinic()
    app.config["BULK_MAX_ROWS"] = 2
    try:
        response = client.post(URL, json=[listing() for _ in range(3)], headers=bearer(token))
        assert "At most 2" in assert_error_shape(response, 422)["message"]
    finally:
        app.config["BULK_MAX_ROWS"] = 5000


def test_bulk_needs_a_token(client, listing):
    assert_error_shape(client.post(URL, json=[listing()]), 401)


def test_bulk_reactivates_a_deactivated_listing(client, make_clinic, listing):
    _, token = make_clinic()
    row = listing()
    client.post(URL, json=[row], headers=bearer(token))
    provider_id = client.get("/api/v1/providers").json["items"][0]["id"]
    client.delete(f"/api/v1/providers/{provider_id}", headers=bearer(token))
    result = client.post(URL, json=[row], headers=bearer(token)).json
    assert result["updated"] == 1
    assert client.get(f"/api/v1/providers/{provider_id}").json["active"] is True
