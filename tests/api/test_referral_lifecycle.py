"""The lifecycle a clinic can live with (issue 12): appointment times, outcomes, notes,
cancelling until completed, no-shows, one open referral per patient and prescriber, and
the other clinic's contact once accepted."""

from __future__ import annotations

import datetime as dt

import pytest

from referral.extensions import db
from referral.models import Clinic
from tests.api.test_referrals import later, payload, send
from tests.conftest import assert_error_shape, bearer

URL = "/api/v1/referrals"


def status(client, token, referral_id, **body):
    return client.post(f"{URL}/{referral_id}/status", json=body, headers=bearer(token))


def test_scheduled_carries_a_future_time_that_may_change(client, parties):
    referral_id = send(client, parties)["id"]
    status(client, parties["receiver"], referral_id, status="accepted")
    for when in (None, "2020-01-01T10:00:00+00:00", "2030-01-01T10:00:00", "tomorrow"):
        body = {"status": "scheduled", **({"appointment_at": when} if when else {})}
        response = status(client, parties["receiver"], referral_id, **body)
        assert "appointment_at" in str(assert_error_shape(response, 422)["errors"]), when
    first = later(24)
    response = status(client, parties["receiver"], referral_id, status="scheduled",
                      appointment_at=first)
    assert response.status_code == 200
    assert dt.datetime.fromisoformat(response.json["appointment_at"]) == \
        dt.datetime.fromisoformat(first)
    moved = (dt.datetime.now(dt.timezone(dt.timedelta(hours=-5))) +
             dt.timedelta(days=3)).replace(microsecond=0)
    response = status(client, parties["receiver"], referral_id, status="scheduled",
                      appointment_at=moved.isoformat(), note="Moved to Thursday.")
    assert response.status_code == 200
    assert dt.datetime.fromisoformat(response.json["appointment_at"]) == moved
    history = response.json["history"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "requested"), ("requested", "accepted"), ("accepted", "scheduled"),
        ("scheduled", "scheduled")]
    assert dt.datetime.fromisoformat(history[-1]["appointment_at"]) == moved
    thread = client.get(f"{URL}/{referral_id}/messages", headers=bearer(parties["sender"]))
    assert [m["text"] for m in thread.json["items"]] == ["Moved to Thursday."]
    assert response.json["appointment_time_zone"] is None  # none given: pages show UTC
    # only the receiver schedules
    assert_error_shape(status(client, parties["sender"], referral_id, status="scheduled",
                              appointment_at=later()), 403)


def test_an_appointment_keeps_the_zone_it_was_booked_in(client, parties):
    referral_id = send(client, parties)["id"]
    status(client, parties["receiver"], referral_id, status="accepted")
    for zone in ("Mars/Olympus_Mons", "Europe/Paris", ""):
        refused = status(client, parties["receiver"], referral_id, status="scheduled",
                         appointment_at=later(24), appointment_time_zone=zone)
        assert "appointment_time_zone" in assert_error_shape(refused, 422)["errors"]["json"]
    booked = status(client, parties["receiver"], referral_id, status="scheduled",
                    appointment_at=later(24), appointment_time_zone="America/Chicago")
    assert booked.status_code == 200
    assert booked.json["appointment_time_zone"] == "America/Chicago"
    assert booked.json["history"][-1]["appointment_time_zone"] == "America/Chicago"
    seen = client.get(f"{URL}/{referral_id}", headers=bearer(parties["sender"])).json
    assert seen["appointment_time_zone"] == "America/Chicago"
    wrong_change = status(client, parties["receiver"], referral_id, status="completed",
                          appointment_time_zone="America/Chicago")
    assert assert_error_shape(wrong_change, 422)["errors"] == {
        "appointment_time_zone": ["Only for scheduled."]}


def test_completed_may_carry_an_outcome_and_details_must_fit_the_status(client, parties):
    referral_id = send(client, parties)["id"]
    assert "outcome" in assert_error_shape(status(
        client, parties["receiver"], referral_id, status="accepted",
        outcome="medication_started"), 422)["errors"]
    status(client, parties["receiver"], referral_id, status="accepted")
    status(client, parties["receiver"], referral_id, status="scheduled",
           appointment_at=later())
    assert_error_shape(status(client, parties["receiver"], referral_id, status="completed",
                              outcome="cured"), 422)
    response = status(client, parties["receiver"], referral_id, status="completed",
                      outcome="medication_started", note="Seen; plan shared.")
    assert response.status_code == 200
    assert response.json["outcome"] == "medication_started"
    assert response.json["history"][-1]["outcome"] == "medication_started"
    # completed is final: the sender can no longer cancel
    assert_error_shape(status(client, parties["sender"], referral_id, status="cancelled",
                              reason="patient_request"), 409)


def test_sender_cancels_until_completed_with_a_cancellation_reason(client, parties):
    referral_id = send(client, parties)["id"]
    status(client, parties["receiver"], referral_id, status="accepted")
    status(client, parties["receiver"], referral_id, status="scheduled",
           appointment_at=later())
    for body in ({"status": "cancelled"}, {"status": "cancelled", "reason": "no_capacity"},
                 {"status": "cancelled", "reason": "whim"}):
        assert "reason" in str(assert_error_shape(
            status(client, parties["sender"], referral_id, **body), 422)["errors"])
    assert_error_shape(status(client, parties["receiver"], referral_id, status="cancelled",
                              reason="patient_request"), 403)
    response = status(client, parties["sender"], referral_id, status="cancelled",
                      reason="care_found_elsewhere", note="Family found a closer clinic.")
    assert response.status_code == 200
    assert (response.json["status"], response.json["reason"]) == ("cancelled",
                                                                   "care_found_elsewhere")
    last = response.json["history"][-1]
    assert (last["from_status"], last["to_status"], last["reason"]) == (
        "scheduled", "cancelled", "care_found_elsewhere")
    assert last["clinic_id"] == response.json["sender_clinic_id"] and last["at"]


def test_no_show_and_booking_again(client, parties):
    referral_id = send(client, parties)["id"]
    status(client, parties["receiver"], referral_id, status="accepted")
    assert_error_shape(status(client, parties["receiver"], referral_id, status="no_show"), 409)
    status(client, parties["receiver"], referral_id, status="scheduled",
           appointment_at=later())
    assert_error_shape(status(client, parties["sender"], referral_id, status="no_show"), 403)
    assert status(client, parties["receiver"], referral_id,
                  status="no_show").json["status"] == "no_show"
    again = status(client, parties["receiver"], referral_id, status="scheduled",
                   appointment_at=later(72))
    assert again.status_code == 200 and again.json["status"] == "scheduled"


def test_one_open_referral_per_patient_and_prescriber(client, parties, create):
    first = send(client, parties)["id"]
    response = client.post(URL, json=payload(parties), headers=bearer(parties["sender"]))
    body = assert_error_shape(response, 409)
    assert body["errors"]["open_referral_id"] == first and str(first) in body["message"]
    # another patient, or another prescriber, is fine
    assert client.post(URL, json=payload(parties, patient_ref="PT-other"),
                       headers=bearer(parties["sender"])).status_code == 201
    second_prescriber = create(parties["receiver"], last_name="Second",
                               provider_type="psychiatrist", taxonomy_codes=["2084P0800X"],
                               credentials="MD", modalities=[])
    assert client.post(URL, json=payload(parties, prescriber_id=second_prescriber["id"]),
                       headers=bearer(parties["sender"])).status_code == 201
    # accepted is still open; once rejected, a new referral may be sent
    status(client, parties["receiver"], first, status="accepted")
    assert_error_shape(client.post(URL, json=payload(parties),
                                   headers=bearer(parties["sender"])), 409)
    status(client, parties["sender"], first, status="cancelled", reason="sent_in_error")
    assert client.post(URL, json=payload(parties),
                       headers=bearer(parties["sender"])).status_code == 201


def test_concurrent_duplicates_cannot_both_be_open(app, parties):
    """The database refuses a second open referral even past the check (a race)."""
    from sqlalchemy.exc import IntegrityError

    from referral.models import Referral

    with app.app_context():
        base = {"therapist_id": parties["therapist"]["id"],
                "prescriber_id": parties["prescriber"]["id"],
                "sender_clinic_id": 1, "receiver_clinic_id": 2, "patient_ref": "PT-race",
                "patient_state": "MA", "concerns": [], "urgency": "routine",
                "contact_preference": "phone", "consent_to_coordinate": True}
        clinics = {c.name: c.id for c in db.session.scalars(db.select(Clinic))}
        base["sender_clinic_id"] = clinics["Sender Therapy"]
        base["receiver_clinic_id"] = clinics["Receiver Psychiatry"]
        db.session.add(Referral(**base, status="accepted"))
        db.session.commit()
        db.session.add(Referral(**base, status="requested"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(Referral(**base, status="rejected"))  # closed ones may repeat
        db.session.commit()


def test_each_side_sees_the_other_clinic_only_once_accepted(app, client, parties):
    with app.app_context():
        for clinic in db.session.scalars(db.select(Clinic)):
            clinic.email = clinic.name.split()[0].lower() + "@example.org"
            clinic.phone = "6175550100"
        db.session.commit()
    referral_id = send(client, parties)["id"]
    for token in (parties["sender"], parties["receiver"]):
        assert client.get(f"{URL}/{referral_id}", headers=bearer(token)).json[
            "counterpart"] is None
    status(client, parties["receiver"], referral_id, status="accepted")
    seen_by_sender = client.get(f"{URL}/{referral_id}", headers=bearer(parties["sender"])).json
    seen_by_receiver = client.get(f"{URL}/{referral_id}",
                                  headers=bearer(parties["receiver"])).json
    assert seen_by_sender["counterpart"]["name"] == "Receiver Psychiatry"
    assert seen_by_sender["counterpart"]["email"] == "receiver@example.org"
    assert seen_by_receiver["counterpart"]["name"] == "Sender Therapy"
    assert seen_by_receiver["counterpart"]["phone"] == "6175550100"
    listed = client.get(URL, query_string={"box": "received"},
                        headers=bearer(parties["receiver"])).json["items"]
    assert listed[0]["counterpart"]["name"] == "Sender Therapy"
    rejected = send(client, parties, patient_ref="PT-rej")["id"]
    status(client, parties["receiver"], rejected, status="rejected", reason="no_capacity",
           note="Full until spring; try Dr. Lee.")
    assert client.get(f"{URL}/{rejected}", headers=bearer(parties["sender"])).json[
        "counterpart"] is None
    thread = client.get(f"{URL}/{rejected}/messages", headers=bearer(parties["sender"])).json
    assert [m["text"] for m in thread["items"]] == ["Full until spring; try Dr. Lee."]


def test_a_note_can_start_the_thread_when_referring(client, parties):
    referral = send(client, parties, note="Needs a medication evaluation; sleep is poor.")
    thread = client.get(f"{URL}/{referral['id']}/messages",
                        headers=bearer(parties["receiver"])).json["items"]
    assert [m["text"] for m in thread] == ["Needs a medication evaluation; sleep is poor."]
    assert_error_shape(client.post(URL, json=payload(parties, patient_ref="PT-long",
                                                     note="z" * 4001),
                                   headers=bearer(parties["sender"])), 422)
