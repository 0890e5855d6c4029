"""Claiming registry records (API and CLI decisions): the import rule for group practices,
claims of listings and organizations, first approved wins, every bad claim a clear 4xx
with nothing written, release, and each clinic seeing only its own claims."""

from __future__ import annotations

import pytest

from referral.extensions import db
from referral.models import ActivityLog, Claim, Clinic, Provider, ProviderAudit
from referral.nppes import NppesRecord, classify, read_csv
from referral.nppes_import import import_records
from tests.conftest import assert_error_shape, bearer
from tests.fixtures.nppes_fixture import PATH, npi

MARY = npi(1)  # an imported clinical social worker, unclaimed
HARBOR = npi(5)  # an imported mental health clinic, unclaimed


def organization(*codes, states=("",)):
    return NppesRecord(npi=npi(90), entity_type="2", organization_name="RIVER GROUP",
                       state="MA", postal_code="02115",
                       taxonomies=[(code, states[0], "Y") for code in codes])


@pytest.mark.parametrize(("codes", "kind"), [
    (("103T00000X",), "clinic"),       # a psychology group
    (("1041C0700X",), "clinic"),       # a social-work group
    (("2084P0800X",), "clinic"),       # a psychiatry group
    (("363LP0808X",), "clinic"),       # a psychiatric NP group
    (("261QM0801X",), "clinic"),       # a mental health clinic, as before
    (("163WP0808X",), "skip"),         # psychiatric registered nurses only: excluded
    (("101YS0200X",), "skip"),         # school counselors: excluded
    (("282N00000X",), "skip"),         # a general hospital
])
def test_group_practices_with_individual_behavioral_codes_become_clinics(codes, kind):
    found = classify(organization(*codes))
    assert found.kind == kind
    if kind == "clinic":
        assert found.values == {"name": "RIVER GROUP", "organization_npi": npi(90),
                                "phone": None}


@pytest.fixture(autouse=True)
def registry(request):
    """The NPPES fixture imported (for the tests that use the app)."""
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context(), open(PATH, newline="", encoding="utf-8") as handle:
        import_records(read_csv(handle))


def claim(client, token, *npis, attest=True, **extra):
    return client.post("/api/v1/claims", json={"npis": list(npis), "attest": attest, **extra},
                       headers=bearer(token))


def decide(runner, claim_id, decision, reason=None):
    args = ["operator", "decide-claim", str(claim_id), decision]
    return runner.invoke(args=args + (["--reason", reason] if reason else []))


def test_search_claim_first_approved_wins_and_the_other_is_told_why(
        app, client, runner, make_clinic):
    _, first = make_clinic("First Clinic")
    _, second = make_clinic("Second Clinic")
    found = client.get(f"/api/v1/registry/unclaimed?npi={MARY}", headers=bearer(first))
    assert [(r["kind"], r["npi"], r["name"]) for r in found.json] == [
        ("listing", MARY, "MARY ANN O'BRIEN")]
    by_name = client.get("/api/v1/registry/unclaimed?name=obrien mary&state=ma",
                         headers=bearer(first))
    assert by_name.status_code == 200 and by_name.json == []  # the apostrophe is kept
    by_name = client.get("/api/v1/registry/unclaimed?name=brien mary&state=MA",
                         headers=bearer(first))
    assert [r["npi"] for r in by_name.json] == [MARY]
    orgs = client.get("/api/v1/registry/unclaimed?name=harbor", headers=bearer(first))
    assert [(r["kind"], r["npi"]) for r in orgs.json] == [("organization", HARBOR)]
    assert_error_shape(client.get("/api/v1/registry/unclaimed", headers=bearer(first)), 422)
    assert_error_shape(client.get("/api/v1/registry/unclaimed?npi=1234567890",
                                  headers=bearer(first)), 422)
    assert_error_shape(client.get(f"/api/v1/registry/unclaimed?npi={MARY}"), 401)

    a = claim(client, first, MARY, evidence="https://first.example/staff")
    assert a.status_code == 201 and a.json[0]["status"] == "pending"
    b = claim(client, second, MARY)
    assert b.status_code == 201
    again = claim(client, first, MARY)
    assert "already waiting" in assert_error_shape(again, 409)["message"]
    assert decide(runner, a.json[0]["id"], "approve").exit_code == 0
    with app.app_context():
        provider = db.session.query(Provider).filter_by(npi=MARY).one()
        assert provider.clinic.name == "First Clinic" and provider.last_verified_at is None
        audit = db.session.query(ProviderAudit).filter_by(action="claim").one()
        assert (audit.channel, audit.source) == ("cli", "claim")
    theirs = client.get("/api/v1/claims", headers=bearer(second)).json
    assert [(c["status"], c["reason"]) for c in theirs] == [
        ("rejected", "Another clinic's claim of this NPI was approved first.")]
    ours = client.get("/api/v1/claims", headers=bearer(first)).json
    assert [c["status"] for c in ours] == ["approved"]
    assert "already claimed by another clinic" in assert_error_shape(
        claim(client, second, MARY), 409)["message"]
    assert "already your listing" in assert_error_shape(claim(client, first, MARY),
                                                        409)["message"]
    decided_twice = decide(runner, b.json[0]["id"], "approve")
    assert decided_twice.exit_code != 0 and "rejected already" in decided_twice.output
    with app.app_context():
        actions = sorted(row.action for row in db.session.query(ActivityLog))
        assert actions == ["claim_approved", "claim_rejected", "claim_requested",
                           "claim_requested"]


def test_bad_claims_are_clear_4xx_and_write_nothing(app, client, runner,
                                                    make_clinic, create):
    _, token = make_clinic()
    _, other = make_clinic("Other")
    theirs = create(other)["npi"]
    unknown = npi(77)
    assert "not in the directory's registry" in assert_error_shape(
        claim(client, token, unknown), 404)["message"]
    assert_error_shape(claim(client, token, "1234567890"), 422)
    assert_error_shape(claim(client, token, theirs), 409)
    assert_error_shape(claim(client, token, MARY, attest=False), 422)
    mixed = assert_error_shape(claim(client, token, MARY, unknown, theirs), 404)
    assert set(mixed["errors"]["npis"]) == {unknown, theirs}
    assert_error_shape(client.post("/api/v1/claims", json={"npis": [], "attest": True},
                                   headers=bearer(token)), 422)
    assert_error_shape(client.post("/api/v1/claims", json={"npis": [MARY], "attest": True,
                                                           "extra": 1},
                                   headers=bearer(token)), 422)
    with app.app_context():
        pending = Clinic(name="Not Yet", status="pending")
        db.session.add(pending)
        db.session.commit()
        from referral.auth import issue_token
        _, waiting = issue_token(pending)
        db.session.commit()
    assert "waiting for approval" in assert_error_shape(claim(client, waiting, MARY),
                                                        403)["message"]
    with app.app_context():
        assert db.session.query(Claim).count() == 0
    missing = decide(runner, 999, "approve")
    assert missing.exit_code != 0 and "No claim has id 999" in missing.output


def test_claiming_an_organization_makes_the_clinic_that_organization(
        app, client, runner, make_clinic):
    clinic_id, token = make_clinic("Harbor (the real one)")
    made = claim(client, token, HARBOR).json[0]
    assert made["kind"] == "organization"
    no_reason = decide(runner, made["id"], "reject")
    assert no_reason.exit_code != 0 and "reason" in no_reason.output
    assert decide(runner, made["id"], "approve").exit_code == 0
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        assert clinic.organization_npi == HARBOR and clinic.name == "Harbor (the real one)"
        assert db.session.query(Clinic).filter_by(status="merged").count() == 1
        with open(PATH, newline="", encoding="utf-8") as handle:
            import_records(read_csv(handle))  # a re-import leaves the claimed clinic alone
        clinic = db.session.get(Clinic, clinic_id)
        assert clinic.name == "Harbor (the real one)" and clinic.organization_npi == HARBOR
        assert db.session.query(Clinic).filter_by(organization_npi=HARBOR).count() == 1
    assert client.get(f"/api/v1/registry/unclaimed?npi={HARBOR}",
                      headers=bearer(token)).json == []


def test_release_gives_the_listing_back_unverified(app, client, runner,
                                                   make_clinic):
    _, token = make_clinic()
    _, other = make_clinic("Other")
    made = claim(client, token, MARY).json[0]
    decide(runner, made["id"], "approve")
    provider_id = made["provider_id"]
    assert client.post(f"/api/v1/providers/{provider_id}/verify",
                       headers=bearer(token)).status_code == 200
    assert_error_shape(client.post(f"/api/v1/providers/{provider_id}/release",
                                   headers=bearer(other)), 404)
    released = client.post(f"/api/v1/providers/{provider_id}/release", headers=bearer(token))
    assert released.status_code == 200 and released.json["clinic"] is None
    assert released.json["last_verified_at"] is None
    found = client.get(f"/api/v1/registry/unclaimed?npi={MARY}", headers=bearer(other))
    assert [r["npi"] for r in found.json] == [MARY]
    assert client.get("/api/v1/claims", headers=bearer(other)).json == []
