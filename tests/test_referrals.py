"""Unit tests of the referral state machine and who may receive a referral."""

from __future__ import annotations

from types import SimpleNamespace

from referral.referrals import (
    RECEIVER,
    REQUESTABLE_STATUSES,
    SENDER,
    STATUSES,
    SYSTEM,
    _can_see,
    allowed_transition,
)


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
