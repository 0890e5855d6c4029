"""Reminders: a weekly digest to each clinic of its listings that go stale soon or are
stale, with a one-click "Still current" link per listing, and a reminder to a receiving
clinic about a referral it has not answered within two business days.

Both are plain operations, safe to repeat and to run at the same moment on several nodes
(``referral remind-stale``, and the delivery workers' daily jobs, ``referral.daily_jobs``):

- **Digest period: the ISO week (UTC).** A clinic gets at most one digest per week
  (``reminder_digest``, unique on clinic and week: of two runs at once, one inserts the
  row and the other's insert fails and sends nothing). A digest lists the clinic's active
  listings not verified within ``STALE_AFTER_DAYS`` (stale) and those that will be within
  ``SOON_DAYS`` (15). A listing entering that window is in the next week's digest, still
  at least 8 days before it goes stale. Only approved clinics get digests.
- **Still-current links** (``listing_link``): one per listing of a digest, for that
  listing only, working once, for ``REMINDER_LINK_DAYS`` (14: two digest weeks). The key
  is an HMAC of the digest and listing under ``SECRET_KEY``, so the worker can write it
  into the email while the database keeps only its SHA-256 hash (a copy of the database
  alone opens no link; a new ``SECRET_KEY`` invalidates the links out). Opening the link
  (GET) only shows the listing and a button: email scanners fetch links, so only the POST
  of that button verifies, through the listing's ordinary verify operation (row version,
  audit with the channel ``link``).
- **Unanswered referrals**: a referral still ``requested`` two business days
  (``referral.business_time``: Monday to Friday, UTC) after it was sent gets one reminder,
  ever (``referral_reminder``, keyed by the referral), to the receiving clinic.

Each reminder is an event (``listing.reminder``, ``referral.reminder``; ids only) with a
webhook delivery and an email, written in the same transaction as the row that makes it
happen once. The digest email names the listings by provider name, with links; never a
patient field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

from flask import current_app
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import events
from .actors import Actor, set_actor
from .auth import hash_token
from .business_time import DAY, business_seconds
from .errors import Gone, NotFound
from .extensions import db
from .models import (
    Clinic,
    ListingLink,
    Provider,
    Referral,
    ReferralReminder,
    ReminderDigest,
    utcnow,
)

log = logging.getLogger(__name__)

#: A digest lists listings that go stale within this many days, with the stale ones.
SOON_DAYS = 15
#: A referral unanswered for this many business days gets its reminder.
ANSWER_WITHIN_BUSINESS_DAYS = 2
#: Keys are at most this long (anything longer is not one of ours).
MAX_KEY_LENGTH = 100


def period_of(moment: dt.datetime) -> str:
    """The digest period of a moment: its ISO week in UTC, e.g. ``2026-W49``."""
    year, week, _ = moment.astimezone(dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def link_key(digest_id: int, provider_id: int, secret_key: str) -> str:
    """The key of a digest's still-current link for a listing (see the module docstring)."""
    message = f"still-current:{digest_id}:{provider_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _due(stale_after_days: int, now: dt.datetime):
    """SQL condition: an active, claimed listing that is stale or will be within SOON_DAYS."""
    soon_before = now - dt.timedelta(days=stale_after_days - SOON_DAYS)
    return and_(Provider.active.is_(True), Provider.clinic_id.is_not(None),
                or_(Provider.last_verified_at.is_(None),
                    Provider.last_verified_at < soon_before))


# ---------------------------------------------------------------------------
# Digests


def send_listing_digests(now: dt.datetime | None = None) -> int:
    """Write this week's digest (with its links, event and deliveries) for every approved
    clinic with listings due and no digest yet this week; commit each clinic on its own.
    Return how many digests were written (0 when run again in the same week)."""
    now = now or utcnow()
    config = current_app.config
    period = period_of(now)
    due = _due(config["STALE_AFTER_DAYS"], now)
    sent_already = exists().where(ReminderDigest.clinic_id == Provider.clinic_id,
                                  ReminderDigest.period == period)
    clinic_ids = db.session.scalars(
        select(Provider.clinic_id).join(Clinic, Clinic.id == Provider.clinic_id)
        .where(due, Clinic.status == "approved", ~sent_already)
        .group_by(Provider.clinic_id).order_by(Provider.clinic_id)).all()
    written = 0
    for clinic_id in clinic_ids:
        written += _write_digest(clinic_id, period, now)
    return written


def _write_digest(clinic_id: int, period: str, now: dt.datetime) -> int:
    """One clinic's digest in one transaction; 0 when another run wrote it first."""
    config = current_app.config
    stale_before = now - dt.timedelta(days=config["STALE_AFTER_DAYS"])
    listings = db.session.execute(
        select(Provider.id, Provider.last_verified_at)
        .where(_due(config["STALE_AFTER_DAYS"], now), Provider.clinic_id == clinic_id)
        .order_by(Provider.last_verified_at.asc().nulls_first(), Provider.id)).all()
    if not listings:
        return 0
    digest = ReminderDigest(clinic_id=clinic_id, period=period, created_at=now)
    db.session.add(digest)
    try:
        db.session.flush()  # the unique key: a concurrent run's digest makes this fail
    except IntegrityError:
        db.session.rollback()
        return 0
    expires = now + dt.timedelta(days=config["REMINDER_LINK_DAYS"])
    stale_ids = []
    for provider_id, verified_at in listings:
        stale = verified_at is None or verified_at < stale_before
        if stale:
            stale_ids.append(provider_id)
        key = link_key(digest.id, provider_id, config["SECRET_KEY"])
        db.session.add(ListingLink(digest_id=digest.id, provider_id=provider_id, stale=stale,
                                   key_hash=hash_token(key), created_at=now,
                                   expires_at=expires))
    event = events.listing_reminder(clinic_id, [row.id for row in listings],
                                    digest_id=digest.id, stale_provider_ids=stale_ids)
    digest.event_id = event.id
    try:
        db.session.commit()
    except IntegrityError:  # the digest of a concurrent run committed first
        db.session.rollback()
        return 0
    return 1


def digest_email(connection, data: dict, base_url: str, secret_key: str
                 ) -> tuple[str, str] | None:
    """The subject and body of a digest's email, read through ``connection`` when the
    worker sends it (None for a reminder event without a digest: the generic text).

    Listings are named by provider name, each with its one-click link and its edit
    page; a listing verified since the digest was made is left out.
    """
    digest_id = data.get("digest_id")
    if digest_id is None:
        return None
    base = base_url.rstrip("/")
    rows = connection.execute(
        select(ListingLink.provider_id, ListingLink.stale, ListingLink.created_at,
               ListingLink.expires_at, Provider.first_name, Provider.last_name,
               Provider.credentials, Provider.last_verified_at)
        .join(Provider, Provider.id == ListingLink.provider_id)
        .where(ListingLink.digest_id == digest_id)
        .order_by(ListingLink.stale.desc(), Provider.last_verified_at.asc().nulls_first(),
                  ListingLink.provider_id)).all()
    waiting = [row for row in rows
               if row.last_verified_at is None or row.last_verified_at < row.created_at]
    sections = {True: [], False: []}
    for row in waiting:
        name = f"{row.first_name} {row.last_name}" + (f", {row.credentials}"
                                                      if row.credentials else "")
        when = (f"last confirmed {row.last_verified_at:%B %-d, %Y}" if row.last_verified_at
                else "never confirmed")
        key = link_key(digest_id, row.provider_id, secret_key)
        sections[row.stale].append(
            f"- {name} ({when})\n"
            f"  Still current: {base}/clinic/listings/{row.provider_id}/still-current/{key}\n"
            f"  Change it: {base}/clinic/providers/{row.provider_id}/edit\n")
    subject = (f"{len(waiting)} listing{'s' if len(waiting) != 1 else ''} to confirm"
               if waiting else "Your listings are confirmed")
    parts = [subject, ""]
    if sections[True]:
        parts += ["Patients see these as not verified, ranked last (after a year search "
                  "hides them):", "", *sections[True]]
    if sections[False]:
        parts += [f"These will show as not verified within {SOON_DAYS} days:", "",
                  *sections[False]]
    if not waiting:
        parts += ["Every listing of this reminder has been confirmed since. Thank you.", ""]
    days = (rows[0].expires_at - rows[0].created_at).days if rows else 0
    parts += [f"Each \"Still current\" link works once, for {days} days, and only for its "
              "listing; it asks you to press a button before anything changes. All your "
              f"listings: {base}/clinic", "",
              "For privacy, this email contains no patient details."]
    return subject, "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# The one-click link


def live_link(provider_id: int, key: str | None) -> ListingLink:
    """The still-current link with this key for this listing, not used and not expired;
    ``Gone`` otherwise (also for a key of another listing's link)."""
    row = None
    if key and len(key) <= MAX_KEY_LENGTH:
        row = db.session.scalar(select(ListingLink).where(
            ListingLink.key_hash == hash_token(key)))
    if (row is None or row.provider_id != provider_id or row.used_at is not None
            or row.expires_at <= utcnow()):
        raise Gone("This link has expired or was used already. Sign in to confirm your "
                   "listings.")
    return row


def confirm_still_current(provider_id: int, key: str) -> Provider:
    """Use a still-current link: the listing is verified by its clinic (the ordinary verify
    operation, audited with the channel ``link``) and the link is used up, together."""
    link = live_link(provider_id, key)
    clinic = db.session.get(Clinic, link.digest.clinic_id)
    now = utcnow()
    # Works once, also for two clicks at the same moment: only one UPDATE finds it unused.
    taken = db.session.execute(update(ListingLink).where(
        ListingLink.id == link.id, ListingLink.used_at.is_(None)).values(used_at=now)).rowcount
    if not taken:
        db.session.rollback()
        raise Gone("This link was used already.")
    set_actor(Actor(channel="link"))
    from .listings import verify_provider

    try:
        return verify_provider(clinic, provider_id)  # commits the link's use with it
    except NotFound:  # the listing has moved to another clinic since the digest
        db.session.rollback()
        raise Gone("This listing is no longer your clinic's.") from None


# ---------------------------------------------------------------------------
# Unanswered referrals


def send_referral_reminders(now: dt.datetime | None = None) -> int:
    """Remind receiving clinics, once per referral, of referrals still ``requested`` two
    business days after they were sent; return how many reminders were written."""
    now = now or utcnow()
    candidates = db.session.execute(
        select(Referral.id, Referral.created_at)
        .outerjoin(ReferralReminder, ReferralReminder.referral_id == Referral.id)
        .where(Referral.status == "requested", ReferralReminder.referral_id.is_(None),
               # a necessary condition the index can use; the business days decide
               Referral.created_at <= now - dt.timedelta(days=ANSWER_WITHIN_BUSINESS_DAYS))
        .order_by(Referral.id)).all()
    late = [referral_id for referral_id, created_at in candidates
            if business_seconds(created_at, now) >= ANSWER_WITHIN_BUSINESS_DAYS * DAY]
    written = 0
    for referral_id in late:
        # FOR SHARE: an answer being saved now commits first or waits for this reminder
        referral = db.session.scalar(select(Referral).where(
            Referral.id == referral_id, Referral.status == "requested")
            .with_for_update(read=True))
        if referral is None:  # answered meanwhile
            db.session.rollback()
            continue
        reminder = ReferralReminder(referral_id=referral.id, created_at=now)
        db.session.add(reminder)
        try:
            db.session.flush()
            event = events.record(events.REFERRAL_REMINDER,
                                  {"referral_id": referral.id, "status": referral.status},
                                  clinic_ids=[referral.receiver_clinic_id],
                                  email_to=[referral.receiver_clinic_id],
                                  referral_id=referral.id)
            reminder.event_id = event.id
            db.session.commit()
        except IntegrityError:  # another run reminded about it first
            db.session.rollback()
            continue
        written += 1
    return written


def send_reminders(now: dt.datetime | None = None) -> tuple[int, int]:
    """Both reminders: ``(listing digests written, referral reminders written)``."""
    return send_listing_digests(now), send_referral_reminders(now)
