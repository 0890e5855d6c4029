"""Importing NPPES data: every classification rule, idempotence, clinic fields kept."""

from __future__ import annotations

import concurrent.futures
import io
import json

import pytest

from referral.extensions import db
from referral.models import Clinic, Provider, ProviderAudit
from referral.nppes import (
    HEADER,
    HeaderError,
    classify,
    five_digit_zip,
    nppes_header,
    read_csv,
    read_registry_json,
)
from seeds.nppes_file import write_nppes_csv
from tests.conftest import bearer
from tests.fixtures import nppes_fixture
from tests.fixtures.nppes_fixture import PATH, npi

EXPECTED = {
    1: ("therapist", None, "clinical_social_worker"),
    2: ("therapist", None, "counselor"),
    3: ("deactivated", None, None),
    4: ("prescriber", None, "psychiatrist"),
    5: ("clinic", None, None),
    6: ("skip", "organization_not_behavioral", None),
    7: ("therapist", None, "counselor"),
    8: ("prescriber", None, "psychiatrist"),
    9: ("skip", "excluded_taxonomy", None),
    10: ("skip", "foreign_address", None),
    11: ("therapist", None, "marriage_family_therapist"),
    13: ("therapist", None, "psychologist"),
    14: ("prescriber", None, "psychiatric_np"),
    15: ("prescriber", None, "prescribing_psychologist"),
    16: ("therapist", None, "psychologist"),
    17: ("skip", "excluded_taxonomy", None),
    18: ("skip", "not_behavioral", None),
    19: ("therapist", None, "counselor"),
}


def classified():
    with open(PATH, newline="", encoding="utf-8") as handle:
        return {c.npi: c for c in (classify(r) for r in read_csv(handle))}


def test_the_committed_fixture_is_the_generated_one_in_the_exact_format():
    with open(PATH, newline="", encoding="utf-8") as handle:
        content = handle.read()
    assert content == nppes_fixture.render()
    first_line = content.split("\r\n")[0]
    assert first_line.count('","') == 329 and first_line.startswith('"NPI","Entity Type Code"')
    assert all(line.startswith('"') and line.endswith('"')
               for line in content.split("\r\n")[:-1])


def test_every_rule_of_classification():
    found = classified()
    for n, (kind, reason, provider_type) in EXPECTED.items():
        item = found[npi(n)]
        assert (item.kind, item.reason) == (kind, reason), n
        if provider_type:
            assert item.values["provider_type"] == provider_type, n
    assert found["1234567890"].reason == "invalid_npi"
    mary = found[npi(1)].values
    assert (mary["first_name"], mary["last_name"], mary["credentials"]) == ("MARY ANN",
                                                                           "O'BRIEN", "LICSW")
    assert (mary["zip"], mary["address_line1"], mary["city"]) == ("02115", "200 LONGWOOD AVE",
                                                                  "BOSTON")
    assert mary["latitude"] is not None and mary["sex"] == "female"
    assert found[npi(2)].values["zip"] == "01002"
    assert found[npi(13)].values["zip"] is None and found[npi(13)].values["latitude"] is None
    assert found[npi(14)].values["licensed_states"] == ["CT", "NJ", "NY"]
    assert found[npi(8)].values["taxonomy_codes"] == ["2084P0800X"]
    assert found[npi(19)].values["taxonomy_codes"] == ["101YM0800X"]
    assert found[npi(5)].values == {"name": "HARBOR MENTAL HEALTH CLINIC INC",
                                    "organization_npi": npi(5), "phone": "6175550199"}


@pytest.mark.parametrize("raw, five", [("021151234", "02115"), ("02115", "02115"),
                                       ("0211", None), ("02115-1234", None), ("", None),
                                       ("M5V2T6", None)])
def test_practice_zip(raw, five):
    assert five_digit_zip(raw) == five


def test_the_older_gender_column_is_accepted_and_bad_headers_are_refused():
    out = io.StringIO(newline="")
    write_nppes_csv(out, [nppes_fixture.ROWS[0]], nppes_header("Provider Gender Code"))
    record = next(read_csv(io.StringIO(out.getvalue(), newline="")))
    assert classify(record).values["sex"] == "female"
    with pytest.raises(HeaderError):
        next(read_csv(io.StringIO('"NPI","Name"\r\n"1","x"\r\n', newline="")))
    with pytest.raises(HeaderError):
        next(read_csv(io.StringIO("", newline="")))
    assert len(HEADER) == 330


def test_import_counts_idempotence_and_deactivation(app, runner):
    with app.app_context():  # a listing that NPPES now says is deactivated
        db.session.add(Provider(npi=npi(3), first_name="Gone", last_name="Away",
                                role="therapist", provider_type="counselor", active=True,
                                licensed_states=["MA"], in_person=False, telehealth=True))
        db.session.commit()
    first = runner.invoke(args=["import-nppes", PATH])
    assert first.exit_code == 0, first.output
    assert "therapists created: 7" in first.output and "prescribers created: 4" in first.output
    assert "clinics created (unclaimed): 1" in first.output
    assert "deactivated: 1" in first.output and "skipped: invalid_npi: 1" in first.output
    assert "skipped: foreign_address: 1" in first.output
    with app.app_context():
        assert db.session.query(Provider).filter_by(npi=npi(3)).one().active is False
        clinic = db.session.query(Clinic).filter_by(organization_npi=npi(5)).one()
        assert clinic.tokens == [] and db.session.query(Provider).filter_by(
            npi=npi(5)).count() == 0
        imported = db.session.query(Provider).filter_by(npi=npi(4)).one()
        assert (imported.clinic_id, imported.last_verified_at) == (None, None)
        assert imported.accepting_new_patients is False
        # written by COPY on PostgreSQL: JSON columns hold lists (not JSON text), and the
        # audit row has what listing_diff gives for a new listing, one entry per set field
        assert imported.modalities == [] and imported.licensed_states == ["MA"]
        assert imported.taxonomy_codes == ["2084P0800X"] and imported.in_person is True
        created = db.session.query(ProviderAudit).filter_by(provider_id=imported.id).one()
        fields = ("first_name", "last_name", "credentials", "role", "provider_type",
                  "taxonomy_codes", "licensed_states", "address_line1", "address_line2",
                  "city", "state", "zip", "latitude", "longitude", "phone")
        assert (created.action, created.source, created.channel) == ("create", "nppes",
                                                                     "import")
        assert created.changes == {field: {"old": None, "new": getattr(imported, field)}
                                   for field in fields if getattr(imported, field) is not None}
        assert created.changes["taxonomy_codes"]["new"] == ["2084P0800X"]
        audits = db.session.query(ProviderAudit).count()
    second = runner.invoke(args=["import-nppes", PATH])
    assert second.exit_code == 0
    assert "created" not in second.output and "updated" not in second.output
    assert "therapists unchanged: 7" in second.output
    with app.app_context():
        assert db.session.query(ProviderAudit).count() == audits


def test_clinic_entered_fields_survive_a_reimport(app, client, runner, make_clinic, listing):
    _, token = make_clinic()
    payload = listing(npi=npi(1), first_name="Mary", last_name="O'Brien", modalities=["DBT"],
                      fee_min=80, fee_max=120, telehealth=True, insurance=["aetna"],
                      accepts_coordinated_care=True, licensed_states=["MA", "NH"])
    created = client.post("/api/v1/providers", json=payload, headers=bearer(token)).json
    result = runner.invoke(args=["import-nppes", PATH])
    assert "therapists updated: 1" in result.output
    after = client.get(f"/api/v1/providers/{created['id']}").json
    assert (after["first_name"], after["last_name"]) == ("MARY ANN", "O'BRIEN")  # NPPES-owned
    assert after["licensed_states"] == ["MA"] and after["zip"] == "02115"
    for field in ("modalities", "fee_min", "fee_max", "telehealth", "insurance",
                  "accepts_coordinated_care", "last_verified_at", "clinic", "wait_days"):
        assert after[field] == created[field], field
    trail = client.get(f"/api/v1/providers/{created['id']}/audit", headers=bearer(token)).json
    assert trail[0]["source"] == "nppes" and trail[0]["clinic_id"] is None
    assert set(trail[0]["changes"]) <= {"first_name", "last_name", "credentials",
                                        "licensed_states", "address_line1", "city",
                                        "phone", "latitude", "longitude", "taxonomy_codes"}


def test_an_edit_saved_while_the_import_writes_is_kept_and_the_import_retries(
        app, client, runner, make_clinic, listing):
    """A clinic saves its listing between the import's read and its update: the update
    matches no row (the version moved on), the import reads the listing again and applies
    NPPES's fields on top of the clinic's edit, which is kept."""
    from sqlalchemy import event

    _, token = make_clinic()
    created = client.post("/api/v1/providers", json=listing(npi=npi(1)),
                          headers=bearer(token)).json
    assert runner.invoke(args=["import-nppes", PATH]).exit_code == 0
    url = f"/api/v1/providers/{created['id']}"
    assert client.patch(url, json={"first_name": "Mae"}, headers=bearer(token)).status_code == 200
    fired = []

    def clinic_saves_first(_conn, _cursor, statement, *_):
        if not fired and statement.startswith("UPDATE provider SET first_name"):
            # the clinic's request runs in a thread of its own (its own app context,
            # session and connection), committed before the import's update goes out
            edit = concurrent.futures.ThreadPoolExecutor(1).submit(
                client.patch, url, json={"bio": "Evenings on Tuesdays."},
                headers=bearer(token)).result()
            fired.append(edit.status_code)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", clinic_saves_first)
    try:
        rerun = runner.invoke(args=["import-nppes", PATH])
    finally:
        event.remove(engine, "before_cursor_execute", clinic_saves_first)
    assert fired == [200] and rerun.exit_code == 0, rerun.output
    assert "therapists updated: 1" in rerun.output and "changed by a clinic" not in rerun.output
    after = client.get(url).json
    assert (after["first_name"], after["bio"]) == ("MARY ANN", "Evenings on Tuesdays.")
    with app.app_context():
        provider = db.session.get(Provider, created["id"])
        assert provider.version == 5  # created, import, first name, bio, import again
        actions = [a.source for a in db.session.query(ProviderAudit)
                   .filter_by(provider_id=created["id"]).order_by(ProviderAudit.id)]
        assert actions == ["api", "nppes", "api", "api", "nppes"]


def test_registry_records_are_not_listed_until_a_clinic_claims_them(app, client, runner,
                                                                     make_clinic, listing):
    """An import's new (unclaimed) records are in neither part of the search index and
    write no change-log rows; no search, page, list or report shows or takes them, not
    even with every availability filter off; a claimed listing that NPPES changes is
    updated in the index."""
    from referral.models import ProviderChange

    _, token = make_clinic()
    claimed = client.post("/api/v1/providers", json=listing(npi=npi(1)),
                          headers=bearer(token)).json
    with app.app_context():
        before = db.session.query(ProviderChange).count()
    assert runner.invoke(args=["import-nppes", PATH]).exit_code == 0
    with app.app_context():
        assert db.session.query(Provider).filter(Provider.clinic_id.is_(None)).count() == 10
        changes = db.session.query(ProviderChange).all()[before:]
        assert [c.provider_id for c in changes] == [claimed["id"]]  # the claimed one only
    found = client.get("/api/v1/providers/search", query_string={
        "include_stale": "true", "accepting_new_patients": "false", "per_page": 100}).json
    assert [item["id"] for item in found["items"]] == [claimed["id"]]
    assert client.get("/api/v1/providers/search", query_string={
        "q": "mary ann", "include_stale": "true", "accepting_new_patients": "false"}
    ).json["items"][0]["first_name"] == "MARY ANN"  # the name NPPES gave, in the text index
    with app.app_context():
        record = db.session.query(Provider).filter_by(npi=npi(4)).one().id
    assert client.get(f"/api/v1/providers/{record}").status_code == 404
    assert client.get(f"/providers/{record}").status_code == 404
    assert client.post(f"/api/v1/providers/{record}/reports",
                       json={"reason": "could_not_reach"}).status_code == 404
    assert [p["id"] for p in client.get("/api/v1/providers?per_page=100").json["items"]] == [
        claimed["id"]]
    report = runner.invoke(args=["check-index", "--no-repair"])
    assert report.exit_code == 0 and "Database: 1 listed listings; index: 1." in report.output
    assert "The index matches the database." in report.output


def test_dry_run_state_filter_and_limit(app, runner):
    dry = runner.invoke(args=["import-nppes", PATH, "--dry-run"])
    assert "Dry run" in dry.output and "therapists created: 7" in dry.output
    with app.app_context():
        assert db.session.query(Provider).count() == 0
    only_ny = runner.invoke(args=["import-nppes", PATH, "--state", "NY"])
    assert "skipped: other_state" in only_ny.output
    with app.app_context():
        assert {p.state for p in db.session.query(Provider)} == {"NY"}
    limited = runner.invoke(args=["import-nppes", PATH, "--limit", "2", "--dry-run"])
    assert "Rows read: 2" in limited.output
    assert runner.invoke(args=["import-nppes", PATH, "--state", "ZZ"]).exit_code != 0


def test_a_file_that_is_not_nppes_is_refused(tmp_path, runner):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,zip\nx,02115\n")
    result = runner.invoke(args=["import-nppes", str(bad)])
    assert result.exit_code != 0 and "Not an NPPES data file" in result.output


REGISTRY = {"result_count": 4, "results": [
    {"number": npi(40), "enumeration_type": "NPI-1",
     "basic": {"first_name": "  ELENA ", "last_name": "ROSSI", "credential": "MD", "sex": "F",
               "status": "A"},
     "addresses": [{"address_purpose": "MAILING", "address_1": "PO BOX 1", "city": "X",
                    "state": "MA", "postal_code": "021159999", "country_code": "US"},
                   {"address_purpose": "LOCATION", "address_1": "1 CHURCH ST",
                    "city": "BURLINGTON", "state": "VT", "postal_code": "054011234",
                    "country_code": "US", "telephone_number": "802-555-0100"}],
     "taxonomies": [{"code": "207R00000X", "primary": True, "state": "VT", "license": "1"},
                    {"code": "2084P0800X", "primary": False, "state": "NH", "license": "2"}]},
    {"number": npi(41), "enumeration_type": "NPI-1",
     "basic": {"first_name": "RN", "last_name": "ONLY", "status": "A"},
     "addresses": [{"address_purpose": "LOCATION", "state": "VT", "postal_code": "05401",
                    "country_code": "US"}],
     "taxonomies": [{"code": "163WP0808X", "primary": True, "state": "VT"}]},
    {"number": npi(42), "enumeration_type": "NPI-2",
     "basic": {"organization_name": "GREEN MOUNTAIN COUNSELING", "status": "A"},
     "addresses": [{"address_purpose": "LOCATION", "state": "VT", "postal_code": "05401",
                    "country_code": "US", "telephone_number": "8025550111"}],
     "taxonomies": [{"code": "261QM0801X", "primary": True}]},
    {"number": npi(43), "enumeration_type": "NPI-1",
     "basic": {"status": "D", "deactivation_date": "2021-03-01"}, "addresses": [],
     "taxonomies": []},
]}


def test_registry_json_follows_the_same_rules(app, runner, tmp_path):
    kinds = [(c.kind, c.reason) for c in map(classify, read_registry_json(REGISTRY))]
    assert kinds == [("prescriber", None), ("skip", "excluded_taxonomy"), ("clinic", None),
                     ("deactivated", None)]
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(REGISTRY))
    result = runner.invoke(args=["import-npi-json", str(path)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        elena = db.session.query(Provider).filter_by(npi=npi(40)).one()
        assert (elena.first_name, elena.role, elena.provider_type) == ("ELENA", "prescriber",
                                                                      "primary_care")
        assert (elena.zip, elena.state, elena.licensed_states) == ("05401", "VT", ["NH", "VT"])
        assert elena.phone == "8025550100"
    again = runner.invoke(args=["import-npi-json", str(path)])
    assert "prescribers unchanged: 1" in again.output
    path.write_text("{not json")
    assert runner.invoke(args=["import-npi-json", str(path)]).exit_code != 0


def test_an_interrupted_import_continues_correctly_on_rerun(app, runner, tmp_path):
    """Batches commit on their own: stopping part-way (here: after 3,000 of 5,000 rows)
    leaves whole batches, and running the file again finishes the job without duplicates."""
    from seeds.nppes_file import write_generated_file

    path = tmp_path / "npidata_pfile_generated.csv"
    write_generated_file(str(path), 5000, seed=12)
    partial = runner.invoke(args=["import-nppes", str(path), "--limit", "3000"])
    assert partial.exit_code == 0, partial.output
    with app.app_context():
        after_partial = db.session.query(Provider).count()
    full = runner.invoke(args=["import-nppes", str(path)])
    assert full.exit_code == 0
    with app.app_context():
        total = db.session.query(Provider).count()
        npis = [p.npi for p in db.session.query(Provider)]
    assert len(npis) == len(set(npis)) and total > after_partial > 0
    assert "unchanged" in full.output and "created" in full.output
    again = runner.invoke(args=["import-nppes", str(path)])
    assert "created" not in again.output and "updated" not in again.output


def test_the_reading_processes_import_exactly_what_one_process_imports(app, tmp_path,
                                                                        monkeypatch):
    """``import_file`` reads and classifies in other processes (fork), chunk by chunk in
    turn, while this one writes: with no reader, one or two (chunks of 1,000 rows, so the
    two readers alternate fifteen times) the counts are those of ``import_records`` on the
    same rows, batch for batch, on a dry run and for real, with a limit too; every byte
    is reported to ``progress``; a rerun changes nothing; a bad header raised in a reading
    process reaches the caller; no reading process is left behind."""
    import multiprocessing

    from referral import nppes_import
    from referral.nppes_import import import_file, import_records
    from seeds.nppes_file import write_generated_file

    monkeypatch.setattr(nppes_import, "CHUNK", 1000)
    path = tmp_path / "npidata_pfile_generated.csv"
    write_generated_file(str(path), 15000, seed=7)
    size = path.stat().st_size
    with app.app_context():
        with open(path, newline="", encoding="utf-8") as handle:
            alone = import_records(read_csv(handle), dry_run=True)
        assert alone["rows"] == 15000 and alone["clinics created (unclaimed)"] > 0
        for readers in (0, 1, 2):
            seen = []
            assert import_file(str(path), dry_run=True, readers=readers,
                               progress=seen.append) == alone, readers
            assert sum(seen) == size and len(seen) == 15, readers
        with open(path, newline="", encoding="utf-8") as handle:
            first_rows = import_records(read_csv(handle), dry_run=True, limit=2500)
        assert import_file(str(path), dry_run=True, limit=2500) == first_rows
        assert first_rows["rows"] == 2500
        assert db.session.query(Provider).count() == 0
        first = import_file(str(path))
        assert first == alone
        created = db.session.query(Provider).count()
        assert created == first["therapists created"] + first["prescribers created"]
        again = import_file(str(path))
        assert not [key for key in again if "created" in key or "updated" in key]
        assert again["therapists unchanged"] == first["therapists created"]
        bad = tmp_path / "bad.csv"
        bad.write_text("name,zip\nx,02115\n")
        with pytest.raises(HeaderError):
            import_file(str(bad))
        (tmp_path / "empty.csv").write_text("")
        with pytest.raises(HeaderError):
            import_file(str(tmp_path / "empty.csv"))
    assert multiprocessing.active_children() == []  # every reading process was joined


def test_a_chunk_keeps_a_record_whose_quoted_value_holds_a_line_break():
    from referral.nppes_import import _chunks

    lines = [b'"1","two\r\n', b'lines"\r\n', b'"2","x"\r\n', b'"3","y"\r\n', b'"4","z\r\n',
             b'\r\n', b'"\r\n']
    assert list(_chunks(lines, 1)) == [lines[:2], [lines[2]], [lines[3]], lines[4:]]
    assert list(_chunks(lines, 2)) == [lines[:2], lines[2:4], lines[4:]]
    assert list(_chunks(lines, 3)) == [lines[:3], lines[3:]]
