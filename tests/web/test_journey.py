"""The whole journey through real HTTP handling, a real SMTP server and the real database:
sign-up -> email confirmation (the link read from the SMTP server) -> operator approval ->
claim of an imported NPPES listing -> operator approves the claim -> the clinic completes
and verifies the listing -> the listing appears in patient search (and not before)."""

from __future__ import annotations

from referral.extensions import db
from referral.models import Provider
from referral.nppes import read_csv
from referral.nppes_import import import_records
from tests.fixtures.nppes_fixture import PATH, npi
from tests.test_accounts import LINK, PASSWORD, sign_in
from tests.test_clinic_pages_helpers import form_for
from tests.web.test_clinic_edit_form import opened
from tests.web.test_pages import csrf, text

MARY = npi(1)


def found_in_search(client, provider_id) -> bool:
    answer = client.get("/api/v1/providers/search?zip=02115&radius_miles=5&per_page=100")
    assert answer.status_code == 200
    return provider_id in [item["id"] for item in answer.json["items"]]


def test_sign_up_to_patient_search(app, mailing, smtp, runner):
    with app.app_context(), open(PATH, newline="", encoding="utf-8") as handle:
        import_records(read_csv(handle))
        provider_id = db.session.query(Provider).filter_by(npi=MARY).one().id
    patient = mailing.test_client()
    assert not found_in_search(patient, provider_id)

    clinic = mailing.test_client()
    clinic.post("/clinic/sign-up", data={
        "clinic_name": "Longwood Counseling", "email": "lead@longwood.example",
        "password": PASSWORD, "csrf_token": csrf(clinic, "/clinic/sign-up")})
    (mail,) = smtp.messages
    clinic.get(LINK.search(mail.get_payload(decode=True).decode()).group(1))
    assert sign_in(clinic, "lead@longwood.example").status_code == 302
    early = clinic.post("/clinic/claims", data={"npi": MARY, "attest": "yes",
                                                "csrf_token": csrf(clinic, "/clinic")})
    assert early.status_code == 403 and "waiting for approval" in text(early)

    assert runner.invoke(args=["operator", "create", "ops@dir.example", "--password",
                               PASSWORD]).exit_code == 0
    operator = mailing.test_client()
    sign_in(operator, "ops@dir.example")
    queue = text(operator.get("/operator"))
    clinic_id = int(queue.split('id="clinic-')[1].split('"')[0])
    operator.post(f"/operator/clinics/{clinic_id}/decision", data={
        "decision": "approve", "reason": "Checked the state license board",
        "csrf_token": csrf(operator, "/operator")})

    search = text(clinic.get("/clinic/claims?name=brien&state=MA"))
    assert MARY in search and "MARY ANN O&#39;BRIEN" in search
    no_attest = clinic.post("/clinic/claims", data={"npi": MARY,
                                                    "csrf_token": csrf(clinic, "/clinic")})
    assert no_attest.status_code == 422
    claimed = clinic.post("/clinic/claims", data={
        "npi": MARY, "attest": "yes", "evidence": "https://longwood.example/team",
        "csrf_token": csrf(clinic, "/clinic")})
    assert claimed.status_code == 302
    queue = text(operator.get("/operator"))
    assert "https://longwood.example/team" in queue and "This provider practices at our" in queue
    claim_id = int(queue.split('id="claim-')[1].split('"')[0])
    operator.post(f"/operator/claims/{claim_id}/decision", data={
        "decision": "approve", "reason": "Listed on the clinic's site",
        "csrf_token": csrf(operator, "/operator")})
    assert "Approved" in text(clinic.get("/clinic/claims"))
    home = text(clinic.get("/clinic"))
    assert "O&#39;BRIEN" in home and "Never verified" in home
    assert not found_in_search(patient, provider_id)  # claimed, not yet completed

    edit_url = f"/clinic/providers/{provider_id}/edit"
    completed = clinic.post(edit_url, data={
        **form_for(clinic_values=True), "first_name": "Mary Ann", "last_name": "O'Brien",
        **opened(clinic, edit_url)})
    assert completed.status_code == 302
    clinic.post(f"/clinic/providers/{provider_id}/verify", data={"csrf_token":
                                                                csrf(clinic, "/clinic")})
    assert found_in_search(patient, provider_id)
    history = text(clinic.get(f"/clinic/providers/{provider_id}/history"))
    assert "NPI registry import" in history
    claim_row = history.split("<td>ops@dir.example</td>")[1].split("</tr>")[0]
    assert "Claim" in claim_row and "clinic pages" in claim_row  # who approved the claim
    assert history.count("lead@longwood.example") == 2  # the edit and the verification
