"""Closed-loop referrals: consent, the state machine, visibility, expiry, history, logs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from referral.extensions import db
from referral.models import Referral
from referral.referrals import STATUSES, expire_referrals
from tests.conftest import assert_error_shape, bearer

URL = "/api/v1/referrals"


@pytest.fixture
def parties(make_clinic, create):
    """A therapist's clinic, a prescriber's clinic, an outsider clinic, and their listings."""
    _, sender = make_clinic("Sender Therapy")
    _, receiver = make_clinic("Receiver Psychiatry")
    _, outsider = make_clinic("Outsider Clinic")
    therapist = create(sender, last_name="Sender")
    prescriber = create(receiver, last_name="Receiver", provider_type="psychiatric_np",
                        taxonomy_codes=["363LP0808X"], credentials="PMHNP-BC", modalities=[])
    return {"sender": sender, "receiver": receiver, "outsider": outsider,
            "therapist": therapist, "prescriber": prescriber}


def payload(parties, **overrides):
    body = {"therapist_id": parties["therapist"]["id"],
            "prescriber_id": parties["prescriber"]["id"], "patient_ref": "PT-7731-zq",
            "patient_state": "MA", "concerns": ["depression", "Insomnia"], "urgency": "soon",
            "contact_preference": "phone", "consent_to_coordinate": True}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def send(client, parties, **overrides):
    response = client.post(URL, json=payload(parties, **overrides),
                           headers=bearer(parties["sender"]))
    assert response.status_code == 201, response.json
    return response.json


def test_create_keeps_the_minimum_and_a_history(client, parties):
    referral = send(client, parties)
    assert referral["status"] == "requested" and referral["concerns"] == ["depression",
                                                                          "insomnia"]
    assert referral["consent_to_coordinate"] is True
    assert [e["to_status"] for e in referral["history"]] == ["requested"]
    assert referral["history"][0]["clinic_id"] == referral["sender_clinic_id"]


@pytest.mark.parametrize("overrides, status, field", [
    ({"consent_to_coordinate": False}, 422, "consent_to_coordinate"),
    ({"consent_to_coordinate": None}, 422, "consent_to_coordinate"),
    ({"patient_ref": "Jane Doe"}, 422, "patient_ref"),
    ({"patient_ref": ""}, 422, "patient_ref"),
    ({"patient_state": "ZZ"}, 422, "patient_state"),
    ({"patient_state": "CA"}, 422, "patient_state"),
    ({"urgency": "yesterday"}, 422, "urgency"),
    ({"contact_preference": "carrier pigeon"}, 422, "contact_preference"),
    ({"concerns": ["vibes"]}, 422, "concerns"),
    ({"diagnosis": "F32.1"}, 422, "diagnosis"),
    ({"therapist_id": 99999}, 404, "therapist_id"),
    ({"prescriber_id": 99999}, 404, "prescriber_id"),
])
def test_create_rejects(client, parties, overrides, status, field):
    response = client.post(URL, json=payload(parties, **overrides),
                           headers=bearer(parties["sender"]))
    body = assert_error_shape(response, status)
    assert field in str(body["errors"])
    with client.application.app_context():
        assert db.session.query(Referral).count() == 0


def test_only_the_therapists_own_clinic_can_refer_and_only_to_coordinating_prescribers(
        client, parties, create):
    assert_error_shape(client.post(URL, json=payload(parties),
                                   headers=bearer(parties["outsider"])), 404)
    loner = create(parties["receiver"], last_name="Loner", provider_type="psychiatrist",
                   taxonomy_codes=["2084P0800X"], credentials="MD",
                   accepts_coordinated_care=False)
    response = client.post(URL, json=payload(parties, prescriber_id=loner["id"]),
                           headers=bearer(parties["sender"]))
    assert "coordinated" in str(assert_error_shape(response, 422)["errors"])
    other_therapist = create(parties["sender"], last_name="Second")
    response = client.post(URL, json=payload(parties, prescriber_id=other_therapist["id"]),
                           headers=bearer(parties["sender"]))
    assert "not a prescriber" in str(assert_error_shape(response, 422)["errors"])
    assert_error_shape(client.post(URL, json=payload(parties)), 401)


def later(hours: int = 48) -> str:
    """An appointment time in the future, ISO with its offset."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


#: The body each status change needs (issue 12: scheduling carries the time, cancelling
#: and rejecting a reason of their own kind).
BODIES = {"accepted": {}, "rejected": {"reason": "no_capacity"},
          "cancelled": {"reason": "patient_request"}, "completed": {},
          "no_show": {}}


def body_for(status: str) -> dict:
    if status == "scheduled":
        return {"status": status, "appointment_at": later()}
    return {"status": status, **BODIES[status]}


def bring_to(client, parties, status: str) -> int:
    """A referral in ``status``, reached through allowed transitions."""
    referral_id = send(client, parties)["id"]
    path = {"requested": [], "accepted": ["accepted"], "rejected": ["rejected"],
            "cancelled": ["cancelled"], "scheduled": ["accepted", "scheduled"],
            "completed": ["accepted", "scheduled", "completed"],
            "no_show": ["accepted", "scheduled", "no_show"]}
    if status == "expired":
        with client.application.app_context():
            expire_referrals(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=15))
        return referral_id
    for step in path[status]:
        token = parties["sender"] if step == "cancelled" else parties["receiver"]
        response = client.post(f"{URL}/{referral_id}/status", json=body_for(step),
                               headers=bearer(token))
        assert response.status_code == 200, response.json
    return referral_id


TARGETS = ("accepted", "rejected", "scheduled", "completed", "cancelled", "no_show")
#: The issue's state machine, written out here independently of the implementation
#: (issue 12 added cancelling after acceptance, rescheduling and no-shows).
EXPECTED = {("requested", "accepted"): "receiver", ("requested", "rejected"): "receiver",
            ("requested", "cancelled"): "sender", ("accepted", "scheduled"): "receiver",
            ("accepted", "cancelled"): "sender", ("scheduled", "scheduled"): "receiver",
            ("scheduled", "completed"): "receiver", ("scheduled", "no_show"): "receiver",
            ("scheduled", "cancelled"): "sender", ("no_show", "scheduled"): "receiver",
            ("no_show", "cancelled"): "sender"}


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("wanted", TARGETS)
def test_every_transition_allowed_or_refused(client, parties, current, wanted):
    referral_id = bring_to(client, parties, current)
    who = EXPECTED.get((current, wanted))
    body = body_for(wanted)
    url = f"{URL}/{referral_id}/status"
    if who is None:
        for token in (parties["sender"], parties["receiver"]):
            assert_error_shape(client.post(url, json=body, headers=bearer(token)), 409)
        return
    right = parties[who]
    wrong = parties["sender" if who == "receiver" else "receiver"]
    assert_error_shape(client.post(url, json=body, headers=bearer(wrong)), 403)
    assert_error_shape(client.post(url, json=body, headers=bearer(parties["outsider"])), 404)
    response = client.post(url, json=body, headers=bearer(right))
    assert response.status_code == 200, response.json
    assert response.json["status"] == wanted
    history = response.json["history"]
    assert (history[-1]["from_status"], history[-1]["to_status"]) == (current, wanted)


def test_rejection_needs_a_reason(client, parties):
    referral_id = send(client, parties)["id"]
    response = client.post(f"{URL}/{referral_id}/status", json={"status": "rejected"},
                           headers=bearer(parties["receiver"]))
    assert "reason" in assert_error_shape(response, 422)["errors"]
    response = client.post(f"{URL}/{referral_id}/status",
                           json={"status": "rejected", "reason": "insurance_not_accepted"},
                           headers=bearer(parties["receiver"]))
    assert response.json["reason"] == "insurance_not_accepted"
    assert response.json["responded_at"] is not None


def test_only_the_two_clinics_see_a_referral(client, parties):
    referral_id = send(client, parties)["id"]
    for token in (parties["sender"], parties["receiver"]):
        assert client.get(f"{URL}/{referral_id}", headers=bearer(token)).status_code == 200
    assert_error_shape(client.get(f"{URL}/{referral_id}", headers=bearer(parties["outsider"])),
                       404)
    assert_error_shape(client.get(f"{URL}/{referral_id}"), 401)
    sent = client.get(URL, query_string={"box": "sent"}, headers=bearer(parties["sender"])).json
    received = client.get(URL, query_string={"box": "received"},
                          headers=bearer(parties["receiver"])).json
    assert [r["id"] for r in sent["items"]] == [r["id"] for r in received["items"]] == [
        referral_id]
    for box in ("sent", "received"):
        assert client.get(URL, query_string={"box": box},
                          headers=bearer(parties["outsider"])).json["total"] == 0
    assert client.get(URL, query_string={"box": "received"},
                      headers=bearer(parties["sender"])).json["total"] == 0
    assert_error_shape(client.get(URL, query_string={"box": "all"},
                                  headers=bearer(parties["sender"])), 422)


def test_unanswered_referrals_expire_after_14_days(app, client, runner, parties):
    old = send(client, parties)["id"]
    fresh = send(client, parties, patient_ref="PT-2")["id"]
    answered = send(client, parties, patient_ref="PT-3")["id"]
    client.post(f"{URL}/{answered}/status", json={"status": "accepted"},
                headers=bearer(parties["receiver"]))
    with app.app_context():
        for referral_id in (old, answered):
            db.session.get(Referral, referral_id).created_at -= dt.timedelta(days=15)
        db.session.commit()
    result = runner.invoke(args=["expire-referrals"])
    assert result.exit_code == 0 and "1 referrals expired" in result.output
    assert "0 referrals expired" in runner.invoke(args=["expire-referrals"]).output
    statuses = {rid: client.get(f"{URL}/{rid}", headers=bearer(parties["sender"])).json["status"]
                for rid in (old, fresh, answered)}
    assert statuses == {old: "expired", fresh: "requested", answered: "accepted"}
    history = client.get(f"{URL}/{old}", headers=bearer(parties["sender"])).json["history"]
    assert history[-1]["to_status"] == "expired" and history[-1]["clinic_id"] is None


def test_referral_fields_never_reach_the_logs(app, client, parties, caplog):
    secret_ref = "PT-QX81-secretref"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL is logged...
    try:
        referral_id = send(client, parties, patient_ref=secret_ref)["id"]
        url = f"{URL}/{referral_id}/status"
        client.post(url, json={"status": "completed"}, headers=bearer(parties["receiver"]))
        client.post(url, json={"status": "accepted"}, headers=bearer(parties["sender"]))
        client.post(URL, json=payload(parties, patient_ref=secret_ref,
                                      consent_to_coordinate=False),
                    headers=bearer(parties["sender"]))
        client.get(f"{URL}/{referral_id}", headers=bearer(parties["outsider"]))
        client.post(url, json={"status": "accepted"}, headers=bearer(parties["receiver"]))
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO referral" in logged  # ...but without its values
    assert secret_ref not in logged
    assert "insomnia" not in logged.lower()  # a concern sent with the referral


def test_responsiveness_figures(app, client, parties):
    from referral.referrals import responsiveness

    accepted = send(client, parties)["id"]
    rejected = send(client, parties, patient_ref="PT-9")["id"]
    client.post(f"{URL}/{accepted}/status", json={"status": "accepted"},
                headers=bearer(parties["receiver"]))
    client.post(f"{URL}/{rejected}/status", json={"status": "rejected", "reason": "other"},
                headers=bearer(parties["receiver"]))
    send(client, parties, patient_ref="PT-10")  # unanswered: not counted yet
    with app.app_context():
        figures = responsiveness([parties["prescriber"]["id"]])[parties["prescriber"]["id"]]
    assert (figures.answered, figures.accepted, figures.expired) == (2, 1, 0)
    assert figures.accepted_share == 0.5 and figures.median_response_hours < 0.1


def test_a_licence_without_telehealth_does_not_reach_another_state(client, make_clinic, create,
                                                                  parties):
    _, office_only = make_clinic("Office Only Psychiatry")
    prescriber = create(office_only, last_name="Officeonly", provider_type="psychiatrist",
                        taxonomy_codes=["2084P0800X"], modalities=[], telehealth=False,
                        licensed_states=["MA", "NH"])
    response = client.post(URL, json=payload(parties, prescriber_id=prescriber["id"],
                                             patient_state="NH"),
                           headers=bearer(parties["sender"]))
    body = assert_error_shape(response, 422)
    assert "patient_state" in body["errors"]
    assert client.post(URL, json=payload(parties, prescriber_id=prescriber["id"],
                                         patient_state="MA"),
                       headers=bearer(parties["sender"])).status_code == 201
