"""The ``referral`` command line, through Flask's CLI runner."""

import re

from referral.extensions import db
from referral.models import ApiToken, Clinic, Provider
from tests.conftest import bearer


def test_init_db_is_idempotent(runner):
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "latest schema" in result.output


def test_clinic_create_prints_a_working_token_once(app, runner, client):
    result = runner.invoke(args=["clinic", "create", "  Lakeside   Therapy ", "--email",
                                 "hi@lakeside.example"])
    assert result.exit_code == 0, result.output
    token = re.search(r"^(mhd_\S+)$", result.output, re.M).group(1)
    me = client.get("/api/v1/clinics/me", headers=bearer(token))
    assert me.status_code == 200 and me.json["name"] == "Lakeside Therapy"
    with app.app_context():
        assert db.session.query(ApiToken).one().token_hash != token


def test_clinic_create_rejects_a_bad_npi(runner):
    result = runner.invoke(args=["clinic", "create", "X", "--npi", "1234567890"])
    assert result.exit_code != 0 and "NPI" in result.output


def test_second_token_and_revocation(app, runner, client):
    first = runner.invoke(args=["clinic", "create", "Two Tokens"]).output.split()[-1]
    with app.app_context():
        clinic_id = db.session.query(Clinic).one().id
    second_out = runner.invoke(args=["clinic", "token", str(clinic_id), "--label", "ehr"]).output
    second = second_out.split()[-1]
    token_id = int(re.search(r"Token (\d+)", second_out).group(1))
    assert client.get("/api/v1/clinics/me", headers=bearer(second)).status_code == 200
    assert runner.invoke(args=["clinic", "revoke", str(token_id)]).exit_code == 0
    assert client.get("/api/v1/clinics/me", headers=bearer(second)).status_code == 401
    assert client.get("/api/v1/clinics/me", headers=bearer(first)).status_code == 200
    listing = runner.invoke(args=["clinic", "list"]).output
    assert "Two Tokens" in listing and "revoked" in listing and "active" in listing
    assert runner.invoke(args=["clinic", "token", "999"]).exit_code != 0
    assert runner.invoke(args=["clinic", "revoke", "999"]).exit_code != 0


def test_seed_is_deterministic_and_rerunnable(app, runner):
    result = runner.invoke(args=["seed", "--count", "120", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "120 providers created" in result.output
    with app.app_context():
        first = sorted(db.session.execute(db.select(Provider.npi, Provider.last_name)).all())
        clinics = db.session.query(Clinic).count()
    again = runner.invoke(args=["seed", "--count", "120", "--seed", "7"])
    assert "0 providers created, 120 already present" in again.output
    with app.app_context():
        assert sorted(db.session.execute(db.select(Provider.npi, Provider.last_name)).all()) \
            == first
        assert db.session.query(Clinic).count() == clinics
    skipped = runner.invoke(args=["seed", "--count", "10", "--if-empty"])
    assert "not seeding" in skipped.output


def test_seeded_listings_are_served(runner, client):
    runner.invoke(args=["seed", "--count", "50"])
    page = client.get("/api/v1/providers?per_page=100").json
    assert page["total"] == 50 and len(page["items"]) == 50


def test_clinic_upload_is_the_same_all_or_nothing_operation(app, runner, client, listing,
                                                           tmp_path, monkeypatch):
    from referral.listing_csv import rows_to_csv

    runner.invoke(args=["clinic", "create", "Uploader"])
    with app.app_context():
        clinic_id = db.session.query(Clinic).one().id
    bad = tmp_path / "bad.csv"
    bad.write_text(rows_to_csv([listing(last_name="Goodrow"), listing(zip="99999")]))
    result = runner.invoke(args=["clinic", "upload", str(clinic_id), str(bad)])
    assert result.exit_code == 1
    assert "row 2, zip: ZIP code 99999 is not a known US ZIP code." in result.output
    good = tmp_path / "good.csv"
    good.write_text(rows_to_csv([listing(last_name="Goodrow"), listing(last_name="Fairway")]))
    monkeypatch.setitem(app.config, "BULK_MAX_ROWS", 1)
    result = runner.invoke(args=["clinic", "upload", str(clinic_id), str(good)])
    assert result.exit_code == 1 and "At most 1 listings per upload" in result.output
    monkeypatch.setitem(app.config, "BULK_MAX_ROWS", 10)
    result = runner.invoke(args=["clinic", "upload", str(clinic_id), str(good)])
    assert result.exit_code == 0 and "2 created, 0 updated, 0 unchanged" in result.output
    found = client.get("/api/v1/providers/search", query_string={"q": "Fairway"}).json
    assert [item["last_name"] for item in found["items"]] == ["Fairway"]
    with app.app_context():
        assert db.session.query(Provider).count() == 2
