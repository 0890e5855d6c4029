"""Closed-loop referrals from therapists to prescribers, as plain functions.

A referral goes ``requested`` -> ``accepted`` | ``rejected`` (with a reason) |
``cancelled``; ``accepted`` -> ``scheduled`` (with the appointment time, which may be
changed) -> ``completed`` (with an outcome code, optional) | ``no_show`` (and from
there scheduled again); the sending clinic may cancel (with a reason) until the
referral is completed; an unanswered ``requested`` becomes ``expired`` after 14 days.
Only the receiving prescriber's clinic accepts, rejects, schedules, completes and
marks a no-show; only the sending clinic cancels. A free-text note may come with any
change: it goes to the referral's coordination thread (encrypted). One referral per
sending clinic, patient reference and prescriber may be open at a time. Once
accepted, each clinic sees the other's name and contact details. Every change is kept
with who and when, and writes a notification event in the same transaction
(``referral.events``). A referral is visible only to the two clinics; its fields are
never logged. Prescribers' responsiveness (median hours to answer, share accepted) is
computed from this history.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from search_index.reach import Patient, reach

from . import events
from .errors import Conflict, DomainError, Invalid, NotFound
from .extensions import db
from .models import (
    OPEN_STATUSES,
    Clinic,
    Provider,
    Referral,
    ReferralEvent,
    ReferralMessage,
    ReferralView,
    utcnow,
)

EXPIRE_AFTER = dt.timedelta(days=14)
#: How often expiry reads the due referrals again after clinics answered some meanwhile.
EXPIRE_ATTEMPTS = 10
URGENCIES = ("routine", "soon", "urgent")
CONTACT_PREFERENCES = ("phone", "email", "portal", "mail")
REJECTION_REASONS = ("not_accepting", "outside_scope", "insurance_not_accepted",
                     "not_licensed_in_state", "no_capacity", "patient_unreachable", "other")
CANCELLATION_REASONS = ("patient_request", "care_found_elsewhere", "no_longer_needed",
                        "sent_in_error", "duplicate", "other")
#: Every reason code a status change may carry (which ones fit depends on the status).
REASONS = tuple(dict.fromkeys(REJECTION_REASONS + CANCELLATION_REASONS))
#: Outcome codes a completed referral may carry.
OUTCOMES = ("evaluation_completed", "medication_started", "medication_adjusted",
            "no_medication_needed", "referred_elsewhere", "patient_declined", "other")
#: Time zones an appointment may be booked in (the US states' and territories', and UTC).
TIME_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
              "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
              "America/Puerto_Rico", "UTC")

SENDER, RECEIVER, SYSTEM = "sender", "receiver", "system"
#: (from, to) -> who may make that change.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("requested", "accepted"): RECEIVER,
    ("requested", "rejected"): RECEIVER,
    ("requested", "cancelled"): SENDER,
    ("requested", "expired"): SYSTEM,
    ("accepted", "scheduled"): RECEIVER,
    ("accepted", "cancelled"): SENDER,
    ("scheduled", "scheduled"): RECEIVER,  # a new appointment time
    ("scheduled", "completed"): RECEIVER,
    ("scheduled", "no_show"): RECEIVER,
    ("scheduled", "cancelled"): SENDER,
    ("no_show", "scheduled"): RECEIVER,
    ("no_show", "cancelled"): SENDER,
}
STATUSES = ("requested", "accepted", "rejected", "cancelled", "expired", "scheduled",
            "completed", "no_show")
#: The statuses a clinic can ask for (``requested`` is where a referral starts; the system
#: expires).
REQUESTABLE_STATUSES = tuple(dict.fromkeys(to for (_, to), who in TRANSITIONS.items()
                                           if who != SYSTEM))
#: An opaque reference the sending clinic chooses for its patient: never a name. (``$`` as
#: in ECMA regexes, for the OpenAPI document; the cleaning rule already trims a newline.)
PATIENT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


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
    try:
        _unchanged_since_checked(checked)  # writes the rows, then checks the listings
    except IntegrityError:  # the partial unique index: this patient has one open already
        db.session.rollback()
        _refuse_second_open(clinic.id, values["patient_ref"], prescriber.id)
        raise
    message = _note(referral, clinic.id, values.get("note"))
    events.referral_event(referral, events.REFERRAL_CREATED, clinic.id,
                          **({"message_id": message.id} if message else {}))
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


def _refuse_second_open(sender_clinic_id: int, patient_ref: str, prescriber_id: int) -> None:
    """Conflict, naming the open referral, when this patient already has one open with
    this prescriber from this clinic."""
    open_id = db.session.scalar(select(Referral.id).where(
        Referral.sender_clinic_id == sender_clinic_id, Referral.patient_ref == patient_ref,
        Referral.prescriber_id == prescriber_id, Referral.status.in_(OPEN_STATUSES)))
    if open_id is not None:
        raise Conflict(f"Referral {open_id} for this patient and prescriber is still open; "
                       "update it or cancel it before sending another.",
                       {"open_referral_id": open_id})


def _note(referral: Referral, clinic_id: int, note: str | None) -> ReferralMessage | None:
    """Add a note to the referral's thread (encrypted), in the current transaction."""
    if not note:
        return None
    from .messages import add_message

    return add_message(referral, clinic_id, note)


def _can_see(prescriber: Provider, state: str) -> bool:
    """The reach rule for a patient known by state: in person in that state, or by
    telehealth licensed there."""
    return bool(reach({"in_person": prescriber.in_person, "telehealth": prescriber.telehealth,
                       "state": prescriber.state,
                       "licensed_states": prescriber.licensed_states}, Patient(state=state)))


def change_status(clinic: Clinic, referral_id: int, wanted: str,
                  reason: str | None = None, *, note: str | None = None,
                  appointment_at: dt.datetime | None = None,
                  appointment_time_zone: str | None = None,
                  outcome: str | None = None) -> Referral:
    """Move a referral to ``wanted`` on behalf of ``clinic``.

    Not a party: not found. Wrong side: forbidden. Not allowed from the current
    status: conflict. A rejection and a cancellation need a reason of their own kind;
    ``scheduled`` needs a future ``appointment_at`` (and may name the
    ``appointment_time_zone`` it was booked in, one of ``TIME_ZONES``, in which both
    clinics' pages then show it); ``completed`` may carry an
    ``outcome``. A ``note`` goes to the coordination thread. Of two changes made at once,
    the one saved second is refused by the row version (``StaleDataError``, answered 409).
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
    reason = _check_details(wanted, reason, appointment_at, outcome, appointment_time_zone)
    previous = referral.status
    _apply(referral, wanted, clinic.id, reason, appointment_at=appointment_at,
           appointment_time_zone=appointment_time_zone, outcome=outcome)
    message = _note(referral, clinic.id, note)
    events.referral_event(referral, events.REFERRAL_STATUS_CHANGED, clinic.id,
                          previous_status=previous,
                          **({"message_id": message.id} if message else {}))
    db.session.commit()
    return referral


def _check_details(wanted: str, reason: str | None, appointment_at: dt.datetime | None,
                   outcome: str | None, time_zone: str | None = None) -> str | None:
    """The reason to keep for this change; 422 for details that do not fit it."""
    problems: dict[str, list[str]] = {}
    kept = None
    if wanted == "rejected":
        if not reason:
            problems["reason"] = ["Required to reject."]
        elif reason not in REJECTION_REASONS:
            problems["reason"] = ["A rejection reason is one of: "
                                  + ", ".join(REJECTION_REASONS) + "."]
        kept = reason
    elif wanted == "cancelled":
        if not reason:
            problems["reason"] = ["Required to cancel."]
        elif reason not in CANCELLATION_REASONS:
            problems["reason"] = ["A cancellation reason is one of: "
                                  + ", ".join(CANCELLATION_REASONS) + "."]
        kept = reason
    if wanted == "scheduled":
        if appointment_at is None:
            problems["appointment_at"] = ["Required to schedule: when the appointment is."]
        elif appointment_at <= utcnow():
            problems["appointment_at"] = ["Must be in the future."]
    elif appointment_at is not None:
        problems["appointment_at"] = ["Only for scheduled."]
    if time_zone is not None and wanted != "scheduled":
        problems["appointment_time_zone"] = ["Only for scheduled."]
    elif time_zone is not None and time_zone not in TIME_ZONES:
        problems["appointment_time_zone"] = ["One of: " + ", ".join(TIME_ZONES) + "."]
    if outcome is not None and wanted != "completed":
        problems["outcome"] = ["Only for completed."]
    elif outcome is not None and outcome not in OUTCOMES:
        problems["outcome"] = ["One of: " + ", ".join(OUTCOMES) + "."]
    if problems:
        what = {"rejected": "reject", "cancelled": "cancel", "scheduled": "schedule"}
        raise Invalid(f"The details do not fit this change to {wanted}"
                      + (f" (say why you {what[wanted]})." if wanted in ("rejected", "cancelled")
                         and "reason" in problems else "."), problems)
    return kept


def _apply(referral: Referral, wanted: str, clinic_id: int | None, reason: str | None,
           now: dt.datetime | None = None, *, appointment_at: dt.datetime | None = None,
           appointment_time_zone: str | None = None, outcome: str | None = None) -> None:
    now = now or utcnow()
    db.session.add(ReferralEvent(referral=referral, from_status=referral.status,
                                 to_status=wanted, clinic_id=clinic_id, reason=reason, at=now,
                                 appointment_at=appointment_at,
                                 appointment_time_zone=appointment_time_zone, outcome=outcome))
    if referral.status == "requested" and wanted in ("accepted", "rejected"):
        referral.responded_at = now
    referral.status = wanted
    if reason:
        referral.reason = reason
    if appointment_at is not None:
        referral.appointment_at = appointment_at
        referral.appointment_time_zone = appointment_time_zone
    if outcome is not None:
        referral.outcome = outcome


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
        try:
            for referral in due:
                _apply(referral, "expired", None, None, now)
                events.referral_event(referral, events.REFERRAL_STATUS_CHANGED, None,
                                      previous_status="requested")  # flushes
            db.session.commit()
        except StaleDataError:  # answered meanwhile: read the due referrals again
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


def counterpart(referral: Referral, clinic: Clinic) -> Clinic | None:
    """The other clinic of the referral, once the referral has been accepted (None before)."""
    if not any(event.to_status == "accepted" for event in referral.events):
        return None
    other = (referral.receiver_clinic_id if _side(referral, clinic) == SENDER
             else referral.sender_clinic_id)
    return db.session.get(Clinic, other)


class PartyView:
    """A referral as one of its clinics sees it: every field of the referral, plus
    ``counterpart`` (the other clinic, once accepted) and ``side``."""

    def __init__(self, referral: Referral, clinic: Clinic):
        self._referral = referral
        self.side = _side(referral, clinic)
        self.counterpart = counterpart(referral, clinic)

    def __getattr__(self, name):
        return getattr(self._referral, name)


def party_view(clinic: Clinic, referral_id: int) -> PartyView:
    """A referral the clinic is a party to, as it sees it (anyone else: not found)."""
    return PartyView(visible_referral(clinic, referral_id), clinic)


def mark_seen(clinic: Clinic, referral: Referral) -> None:
    """Remember that the clinic has opened the referral now (for new and unread markers)."""
    view = db.session.get(ReferralView, (referral.id, clinic.id))
    if view is None:
        db.session.add(ReferralView(referral_id=referral.id, clinic_id=clinic.id))
    else:
        view.seen_at = utcnow()
    try:
        db.session.commit()
    except IntegrityError:  # opened in two tabs at once: seen either way
        db.session.rollback()


def unread_referrals(clinic: Clinic, referral_ids: list[int] | None = None) -> dict[int, str]:
    """``{referral_id: "new" | "unread"}`` of the clinic's referrals with activity by the
    other clinic (or the system) it has not seen: ``new`` for a received referral never
    opened, ``unread`` for later changes and messages. ``referral_ids`` limits the look."""
    mine = select(Referral.id).where(or_(Referral.sender_clinic_id == clinic.id,
                                         Referral.receiver_clinic_id == clinic.id))
    if referral_ids is not None:
        mine = mine.where(Referral.id.in_(referral_ids))
    mine = mine.scalar_subquery()
    activity = union_all(
        select(ReferralEvent.referral_id.label("referral_id"), ReferralEvent.at.label("at"))
        .where(ReferralEvent.referral_id.in_(mine),
               or_(ReferralEvent.clinic_id.is_(None), ReferralEvent.clinic_id != clinic.id)),
        select(ReferralMessage.referral_id.label("referral_id"),
               ReferralMessage.created_at.label("at"))
        .where(ReferralMessage.referral_id.in_(mine), ReferralMessage.clinic_id != clinic.id),
    ).subquery()
    last = (select(activity.c.referral_id, func.max(activity.c.at).label("last"))
            .group_by(activity.c.referral_id).subquery())
    rows = db.session.execute(
        select(Referral.id, Referral.receiver_clinic_id, last.c.last, ReferralView.seen_at)
        .join(last, last.c.referral_id == Referral.id)
        .outerjoin(ReferralView, and_(ReferralView.referral_id == Referral.id,
                                      ReferralView.clinic_id == clinic.id)))
    marks = {}
    for referral_id, receiver, last_at, seen_at in rows:
        last_at = last_at if isinstance(last_at, dt.datetime) else _as_time(last_at)
        if seen_at is None:
            marks[referral_id] = "new" if receiver == clinic.id else "unread"
        elif last_at is not None and last_at > seen_at:
            marks[referral_id] = "unread"
    return marks


def _as_time(value) -> dt.datetime | None:
    """A timestamp read through a union (SQLite gives text, without a zone)."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


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

