"""Closed-loop referrals from therapists to prescribers, as plain functions.

A referral goes ``requested`` -> ``accepted`` | ``rejected`` (with a reason) |
``cancelled``; ``accepted`` -> ``scheduled`` -> ``completed``; an unanswered
``requested`` becomes ``expired`` after 14 days. Only the receiving prescriber's
clinic accepts, rejects, schedules and completes; only the sending clinic
cancels. Every change is kept with who and when. A referral is visible only to
the two clinics; its fields are never logged. Prescribers' responsiveness
(median hours to answer, share accepted) is computed from this history.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from search_index.reach import Patient, reach

from .errors import Conflict, DomainError, Invalid, NotFound
from .extensions import db
from .models import Clinic, Provider, Referral, ReferralEvent, utcnow

EXPIRE_AFTER = dt.timedelta(days=14)
#: How often expiry reads the due referrals again after clinics answered some meanwhile.
EXPIRE_ATTEMPTS = 10
URGENCIES = ("routine", "soon", "urgent")
CONTACT_PREFERENCES = ("phone", "email", "portal", "mail")
REJECTION_REASONS = ("not_accepting", "outside_scope", "insurance_not_accepted",
                     "not_licensed_in_state", "no_capacity", "patient_unreachable", "other")

SENDER, RECEIVER, SYSTEM = "sender", "receiver", "system"
#: (from, to) -> who may make that change.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("requested", "accepted"): RECEIVER,
    ("requested", "rejected"): RECEIVER,
    ("requested", "cancelled"): SENDER,
    ("requested", "expired"): SYSTEM,
    ("accepted", "scheduled"): RECEIVER,
    ("scheduled", "completed"): RECEIVER,
}
STATUSES = ("requested", "accepted", "rejected", "cancelled", "expired", "scheduled",
            "completed")
#: The statuses a clinic can ask for (``requested`` is where a referral starts; the system
#: expires).
REQUESTABLE_STATUSES = tuple(dict.fromkeys(to for (_, to), who in TRANSITIONS.items()
                                           if who != SYSTEM))
#: An opaque reference the sending clinic chooses for its patient: never a name.
PATIENT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}\Z"


class Forbidden(DomainError):
    """The caller is a party to the referral but not the one who may do this."""

    status = 403


def allowed_transition(current: str, wanted: str) -> str | None:
    """Who may move a referral from ``current`` to ``wanted`` (None: nobody)."""
    return TRANSITIONS.get((current, wanted))


def _side(referral: Referral, clinic: Clinic) -> str | None:
    if clinic.id == referral.sender_clinic_id:
        return SENDER
    if clinic.id == referral.receiver_clinic_id:
        return RECEIVER
    return None


def visible_referral(clinic: Clinic, referral_id: int) -> Referral:
    """A referral the clinic is a party to; anyone else gets not-found."""
    referral = db.session.get(Referral, referral_id)
    if referral is None or _side(referral, clinic) is None:
        raise NotFound(f"No referral {referral_id} is visible to your clinic.")
    return referral


def create_referral(clinic: Clinic, values: dict) -> Referral:
    """Send a referral from one of ``clinic``'s therapists to a prescriber.

    ``values`` are validated input; consent to coordinate must be recorded.
    """
    if values.get("consent_to_coordinate") is not True:
        raise Invalid("A referral needs the patient's consent to coordinate care.",
                      {"consent_to_coordinate": ["Must be true: no consent, no referral."]})
    therapist = db.session.get(Provider, values["therapist_id"])
    if therapist is None or therapist.clinic_id != clinic.id or not therapist.active:
        raise NotFound(f"Your clinic has no active listing {values['therapist_id']}.",
                       {"therapist_id": ["Not one of your clinic's active listings."]})
    if therapist.role != "therapist":
        raise Invalid("Referrals are sent by therapists.",
                      {"therapist_id": ["This listing is not a therapist."]})
    prescriber = db.session.get(Provider, values["prescriber_id"])
    if prescriber is None or not prescriber.active:
        raise NotFound(f"No active listing {values['prescriber_id']}.",
                       {"prescriber_id": ["No active listing with this id."]})
    problems = {}
    if prescriber.role != "prescriber":
        problems["prescriber_id"] = ["This listing is not a prescriber."]
    elif not prescriber.accepts_coordinated_care:
        problems["prescriber_id"] = ["This prescriber does not take coordinated-care referrals."]
    elif prescriber.clinic_id is None:
        problems["prescriber_id"] = ["This listing is not managed by a clinic that can answer."]
    elif not _can_see(prescriber, values["patient_state"]):
        problems["patient_state"] = [
            f"The prescriber cannot see a patient in {values['patient_state']}: neither in "
            "person there nor by telehealth with a licence there."]
    if problems:
        raise Invalid("This prescriber cannot take this referral.", problems)
    checked = {therapist.id: therapist.version, prescriber.id: prescriber.version}
    referral = Referral(
        therapist_id=therapist.id, prescriber_id=prescriber.id, sender_clinic_id=clinic.id,
        receiver_clinic_id=prescriber.clinic_id, patient_ref=values["patient_ref"],
        patient_state=values["patient_state"], concerns=values.get("concerns", []),
        urgency=values["urgency"], contact_preference=values["contact_preference"],
        consent_to_coordinate=True, status="requested")
    db.session.add(referral)
    db.session.add(ReferralEvent(referral=referral, from_status=None, to_status="requested",
                                 clinic_id=clinic.id))
    _unchanged_since_checked(checked)
    db.session.commit()
    return referral


def _unchanged_since_checked(versions: dict[int, int]) -> None:
    """Write the pending rows, then make sure the listings checked for them are still at
    the ``versions`` checked (else ``Conflict``, nothing written), and keep them so.

    The writes take SQLite's one write lock, and the read shares PostgreSQL's row locks
    (``FOR SHARE``): a change to these listings commits before this check or waits until
    this transaction ends, so what was checked holds when the referral is saved.
    """
    db.session.flush()
    rows = db.session.execute(select(Provider.id, Provider.version)
                              .where(Provider.id.in_(list(versions)))
                              .with_for_update(read=True))
    now = {provider_id: version for provider_id, version in rows}
    if now != versions:
        db.session.rollback()
        raise Conflict("The therapist's or the prescriber's listing changed while the referral "
                       "was being sent; nothing was written. Check it and try again.")


def _can_see(prescriber: Provider, state: str) -> bool:
    """The reach rule for a patient known by state: in person in that state, or by
    telehealth licensed there."""
    return bool(reach({"in_person": prescriber.in_person, "telehealth": prescriber.telehealth,
                       "state": prescriber.state,
                       "licensed_states": prescriber.licensed_states}, Patient(state=state)))


def change_status(clinic: Clinic, referral_id: int, wanted: str,
                  reason: str | None = None) -> Referral:
    """Move a referral to ``wanted`` on behalf of ``clinic``.

    Not a party: not found. Wrong side: forbidden. Not allowed from the current
    status: conflict. A rejection needs a reason. Of two changes made at once, the
    one saved second is refused by the row version (``StaleDataError``, answered 409).
    """
    referral = visible_referral(clinic, referral_id)
    side = _side(referral, clinic)
    who = allowed_transition(referral.status, wanted)
    if who is None:
        raise Conflict(f"A {referral.status} referral cannot become {wanted}.",
                       {"status": [f"Not allowed from {referral.status}."]})
    if who != side:
        party = "receiving prescriber's" if who == RECEIVER else "sending"
        raise Forbidden(f"Only the {party} clinic can make a referral {wanted}.")
    if wanted == "rejected" and not reason:
        raise Invalid("Say why the referral is rejected.", {"reason": ["Required to reject."]})
    _apply(referral, wanted, clinic.id, reason if wanted == "rejected" else None)
    db.session.commit()
    return referral


def _apply(referral: Referral, wanted: str, clinic_id: int | None, reason: str | None,
           now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    db.session.add(ReferralEvent(referral=referral, from_status=referral.status,
                                 to_status=wanted, clinic_id=clinic_id, reason=reason, at=now))
    if referral.status == "requested" and wanted in ("accepted", "rejected"):
        referral.responded_at = now
    referral.status = wanted
    if reason:
        referral.reason = reason


def expire_referrals(now: dt.datetime | None = None) -> int:
    """Expire every referral still ``requested`` 14 days after it was sent (repeatable).

    A referral a clinic answers meanwhile keeps that answer: on PostgreSQL the due rows
    are locked as they are read (ones being answered are skipped); elsewhere the row
    version refuses the batch, which is then read again without the answered one.
    """
    now = now or utcnow()
    for _ in range(EXPIRE_ATTEMPTS):
        due = db.session.scalars(select(Referral).where(
            Referral.status == "requested", Referral.created_at < now - EXPIRE_AFTER)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)).all()
        for referral in due:
            _apply(referral, "expired", None, None, now)
        try:
            db.session.commit()
        except StaleDataError:
            db.session.rollback()
            continue
        return len(due)
    raise Conflict(f"Referrals were answered while they were being expired, {EXPIRE_ATTEMPTS} "
                   "times in a row; nothing was expired. Run it again.")


def clinic_referrals(clinic: Clinic, box: str, page: int, per_page: int) -> dict:
    """The clinic's sent or received referrals, newest first, paginated."""
    from .listings import paginate

    column = Referral.sender_clinic_id if box == "sent" else Referral.receiver_clinic_id
    query = select(Referral).where(column == clinic.id).order_by(Referral.created_at.desc(),
                                                                  Referral.id.desc())
    return paginate(query, page, per_page)


# ---------------------------------------------------------------------------
# Responsiveness and shared history, for ranking


@dataclass
class Responsiveness:
    """How a prescriber has answered referrals."""

    answered: int = 0
    accepted: int = 0
    expired: int = 0
    median_response_hours: float | None = None

    @property
    def accepted_share(self) -> float | None:
        """Accepted among answered and expired referrals (None without any)."""
        total = self.answered + self.expired
        return round(self.accepted / total, 3) if total else None

    def score(self) -> float:
        """0..1 for ranking: smoothed acceptance share times answer speed; 0.5 when unknown."""
        total = self.answered + self.expired
        if not total:
            return 0.5
        share = (self.accepted + 1) / (total + 2)
        if self.median_response_hours is None:  # nothing answered, only expired
            speed = 0.0
        else:
            speed = 1.0 / (1.0 + self.median_response_hours / 48.0)
        return share * (0.5 + 0.5 * speed)

    def as_dict(self) -> dict:
        """The figures shown to users."""
        return {"referrals_answered": self.answered, "accepted_share": self.accepted_share,
                "median_response_hours": (round(self.median_response_hours, 1)
                                          if self.median_response_hours is not None else None)}


def responsiveness(prescriber_ids: list[int]) -> dict[int, Responsiveness]:
    """Responsiveness of each prescriber from the referral history (missing: none yet)."""
    figures: dict[int, Responsiveness] = {}
    if not prescriber_ids:
        return figures
    hours: dict[int, list[float]] = defaultdict(list)
    rows = db.session.execute(
        select(Referral.prescriber_id, Referral.status, Referral.created_at,
               Referral.responded_at)
        .where(Referral.prescriber_id.in_(prescriber_ids),
               or_(Referral.responded_at.is_not(None), Referral.status == "expired")))
    accepted_after = {"accepted", "scheduled", "completed"}
    for prescriber_id, status, created, responded in rows:
        entry = figures.setdefault(prescriber_id, Responsiveness())
        if status == "expired":
            entry.expired += 1
            continue
        entry.answered += 1
        entry.accepted += status in accepted_after
        hours[prescriber_id].append((responded - created).total_seconds() / 3600)
    for prescriber_id, values in hours.items():
        figures[prescriber_id].median_response_hours = statistics.median(values)
    return figures


def completed_together(therapist_ids: list[int], prescriber_ids: list[int]) -> dict:
    """``{(therapist_id, prescriber_id): completed referral count}`` among the given ids."""
    if not therapist_ids or not prescriber_ids:
        return {}
    rows = db.session.execute(
        select(Referral.therapist_id, Referral.prescriber_id, func.count())
        .where(Referral.status == "completed", Referral.therapist_id.in_(therapist_ids),
               Referral.prescriber_id.in_(prescriber_ids))
        .group_by(Referral.therapist_id, Referral.prescriber_id))
    return {(t, p): n for t, p, n in rows}

