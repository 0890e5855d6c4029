"""Unit tests of the referral state machine, who may receive a referral, and referral
writes under concurrency (row versions)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy.orm.exc import StaleDataError

from referral.errors import Conflict
from referral.extensions import db
from referral.models import Clinic, Referral, ReferralEvent
from referral.referrals import (
    RECEIVER,
    REQUESTABLE_STATUSES,
    SENDER,
    STATUSES,
    SYSTEM,
    _can_see,
    allowed_transition,
    change_status,
    create_referral,
    expire_referrals,
)
from tests.interleave import another_writer_first


def test_transitions_are_exactly_the_documented_ones():
    # issue 12: the sender cancels until completed; the receiver reschedules and marks a
    # no-show (after which it may schedule again)
    expected = {("requested", "accepted"): RECEIVER, ("requested", "rejected"): RECEIVER,
                ("requested", "cancelled"): SENDER, ("requested", "expired"): SYSTEM,
                ("accepted", "scheduled"): RECEIVER, ("accepted", "cancelled"): SENDER,
                ("scheduled", "scheduled"): RECEIVER, ("scheduled", "completed"): RECEIVER,
                ("scheduled", "no_show"): RECEIVER, ("scheduled", "cancelled"): SENDER,
                ("no_show", "scheduled"): RECEIVER, ("no_show", "cancelled"): SENDER}
    for current in STATUSES:
        for wanted in STATUSES:
            assert allowed_transition(current, wanted) == expected.get((current, wanted))
    assert set(REQUESTABLE_STATUSES) == {"accepted", "rejected", "cancelled", "scheduled",
                                         "completed", "no_show"}


def prescriber(**values):
    base = {"in_person": True, "telehealth": False, "state": "MA", "licensed_states": ["MA"]}
    return SimpleNamespace(**{**base, **values})


def test_a_licence_alone_does_not_reach_a_patient_without_telehealth():
    only_in_person = prescriber(licensed_states=["MA", "NY"])
    assert not _can_see(only_in_person, "NY")
    assert _can_see(prescriber(licensed_states=["MA", "NY"], telehealth=True), "NY")
    assert _can_see(only_in_person, "MA")
    assert not _can_see(prescriber(in_person=False, telehealth=True), "NY")


# ---------------------------------------------------------------------------
# Under concurrency: the row version (another writer commits between read and write)


@pytest.fixture
def sent(app, make_clinic, listing):
    """``(sender_id, receiver_id, prescriber_id, referral_id)``: a requested referral."""
    from referral import listings
    from referral.models import Clinic
    from referral.referrals import create_referral
    from referral.schemas.listings import ListingSchema

    sender_id, _ = make_clinic("Unit Sender")
    receiver_id, _ = make_clinic("Unit Receiver")
    with app.app_context():
        sender, receiver = db.session.get(Clinic, sender_id), db.session.get(Clinic, receiver_id)
        therapist = listings.create_provider(sender, ListingSchema().load(listing()))
        prescriber = listings.create_provider(receiver, ListingSchema().load(listing(
            provider_type="psychiatric_np", taxonomy_codes=["363LP0808X"], modalities=[])))
        referral = create_referral(sender, {
            "therapist_id": therapist.id, "prescriber_id": prescriber.id,
            "patient_ref": "PT-unit-1", "patient_state": "MA", "concerns": ["depression"],
            "urgency": "soon", "contact_preference": "phone", "consent_to_coordinate": True})
        ids = (sender_id, receiver_id, prescriber.id, therapist.id, referral.id)
        db.session.remove()
    return ids


def history(app, referral_id: int) -> tuple[str, list[str], int]:
    """The stored status, the statuses of its history and its version."""
    with app.app_context():
        referral = db.session.get(Referral, referral_id)
        found = (referral.status, [e.to_status for e in referral.events], referral.version)
        db.session.remove()
    return found


#: A reason of the right kind for the changes that need one.
REASONS = {"rejected": "no_capacity", "cancelled": "patient_request"}


def clinic_changes_status(clinic_id: int, referral_id: int, status: str):
    """The other writer: a clinic changing the referral's status through the operation."""
    def write():
        change_status(db.session.get(Clinic, clinic_id), referral_id, status,
                      reason=REASONS.get(status))
    return write


@pytest.mark.parametrize("mine, theirs", [
    (("receiver", "accepted"), ("sender", "cancelled")),
    (("sender", "cancelled"), ("receiver", "accepted")),
    (("receiver", "rejected"), ("receiver", "accepted")),
    (("receiver", "accepted"), ("receiver", "accepted")),
])
def test_a_status_change_after_another_was_saved_is_refused(app, sent, mine, theirs):
    sender_id, receiver_id, _, _, referral_id = sent
    clinic_of = {"sender": sender_id, "receiver": receiver_id}
    with app.app_context():
        with another_writer_first(app, clinic_changes_status(clinic_of[theirs[0]],
                                                             referral_id, theirs[1])), \
                pytest.raises(StaleDataError):
            change_status(db.session.get(Clinic, clinic_of[mine[0]]), referral_id, mine[1],
                          reason=REASONS.get(mine[1]))
        db.session.rollback()
        db.session.remove()
    assert history(app, referral_id) == (theirs[1], ["requested", theirs[1]], 2)


def test_expiry_and_an_answer_at_the_same_time_keep_one_of_them(app, sent):
    """SQLite: the answer saved while expiry runs is kept (expiry reads again).
    PostgreSQL: expiry locks the due rows it reads, so the answer cannot come in
    between; it waits, and then the referral is expired and the answer refused."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    _, receiver_id, _, _, referral_id = sent
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=15)
    answer = clinic_changes_status(receiver_id, referral_id, "accepted")
    locked = []

    def answer_meanwhile():
        if db.engine.dialect.name != "postgresql":
            answer()
            return
        db.session.execute(text("SET LOCAL lock_timeout = '500ms'"))
        with pytest.raises(OperationalError) as waited:
            answer()
        locked.append(waited.value.orig.sqlstate)  # 55P03: lock not available
        db.session.rollback()

    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
        db.session.get(Referral, referral_id)  # already in this session, as read before
        with another_writer_first(app, answer_meanwhile):
            expired = expire_referrals(now=later)
        db.session.remove()
    if postgresql:
        assert (locked, expired) == (["55P03"], 1)
        assert history(app, referral_id) == ("expired", ["requested", "expired"], 2)
        with app.app_context(), pytest.raises(Conflict):
            answer()
    else:
        assert expired == 0
        assert history(app, referral_id) == ("accepted", ["requested", "accepted"], 2)


def test_a_referral_is_not_sent_to_a_prescriber_who_stopped_taking_them_meanwhile(app, sent):
    sender_id, receiver_id, prescriber_id, therapist_id, _ = sent

    def prescriber_stops():
        from referral.listings import update_provider
        update_provider(db.session.get(Clinic, receiver_id), prescriber_id,
                        {"accepts_coordinated_care": False})

    with app.app_context():
        before = db.session.query(Referral).count()
        with another_writer_first(app, prescriber_stops), pytest.raises(Conflict) as refused:
            create_referral(db.session.get(Clinic, sender_id), {
                "therapist_id": therapist_id, "prescriber_id": prescriber_id,
                "patient_ref": "PT-unit-2", "patient_state": "MA", "concerns": [],
                "urgency": "routine", "contact_preference": "email",
                "consent_to_coordinate": True})
        assert "nothing was written" in refused.value.message
        assert db.session.query(Referral).count() == before
        assert db.session.query(ReferralEvent).count() == before  # one event per referral
        db.session.remove()
