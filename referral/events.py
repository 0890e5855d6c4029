"""The notification outbox: events written in the same transaction as the change they
report, fanned out to deliveries (webhook endpoints, emails) that workers send.

An event carries ids and statuses only (never patient fields, never message text). A
referral event goes to the webhooks of both of its clinics that subscribe to its type,
and by email to the clinic that did not cause it (the sender when the system did).
Nothing here commits: the caller's transaction commits the change, the event and its
deliveries together, or none of them (``referral.delivery`` sends them).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from .extensions import db
from .models import Delivery, Event, Referral, WebhookEndpoint, utcnow

REFERRAL_CREATED = "referral.created"
REFERRAL_STATUS_CHANGED = "referral.status_changed"
REFERRAL_MESSAGE = "referral.message"
LISTING_REMINDER = "listing.reminder"
#: A patient reported a listing (``referral.reports``): ``{provider_id, report_id, reason,
#: reported}``, never the report's text.
LISTING_REPORTED = "listing.reported"
#: A referral has waited two business days for the receiving clinic's answer.
REFERRAL_REMINDER = "referral.reminder"
#: Every event type, for webhook subscriptions.
EVENT_TYPES = (REFERRAL_CREATED, REFERRAL_STATUS_CHANGED, REFERRAL_MESSAGE, LISTING_REMINDER,
               LISTING_REPORTED, REFERRAL_REMINDER)


def new_public_id() -> str:
    """A unique message id (the ``webhook-id`` header; receivers deduplicate by it)."""
    return "msg_" + uuid.uuid4().hex


def record(event_type: str, data: dict, *, clinic_ids: list[int], email_to: list[int],
           referral_id: int | None = None, actor_clinic_id: int | None = None) -> Event:
    """Add an event and its deliveries to the current transaction (no commit).

    ``clinic_ids``: clinics whose webhooks (subscribed to ``event_type``) receive it;
    ``email_to``: clinics emailed about it.
    """
    now = utcnow()
    event = Event(public_id=new_public_id(), type=event_type, referral_id=referral_id,
                  actor_clinic_id=actor_clinic_id, data=data, created_at=now)
    db.session.add(event)
    db.session.flush()
    endpoints = db.session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.clinic_id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.clinic_id.in_(clinic_ids),
               WebhookEndpoint.deleted_at.is_(None))).all() if clinic_ids else []
    rows = [{"event_id": event.id, "channel": "webhook", "clinic_id": clinic_id,
             "endpoint_id": endpoint_id, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for endpoint_id, clinic_id, types in endpoints if event_type in types]
    rows += [{"event_id": event.id, "channel": "email", "clinic_id": clinic_id,
              "endpoint_id": None, "status": "pending", "attempts": 0,
              "next_attempt_at": now, "created_at": now}
             for clinic_id in dict.fromkeys(email_to)]
    if rows:
        db.session.execute(Delivery.__table__.insert(), rows)
    return event


def referral_event(referral: Referral, event_type: str, actor_clinic_id: int | None,
                   **data) -> Event:
    """Record an event about ``referral`` (ids and status only) for both of its clinics.

    Email goes to the clinic that did not act (the sender when the system acted).
    """
    db.session.flush()
    parties = [referral.sender_clinic_id, referral.receiver_clinic_id]
    if actor_clinic_id is None:
        email_to = [referral.sender_clinic_id]
    else:
        email_to = [clinic for clinic in parties if clinic != actor_clinic_id]
    payload = {"referral_id": referral.id, "status": referral.status, **data}
    return record(event_type, payload, clinic_ids=parties, email_to=email_to,
                  referral_id=referral.id, actor_clinic_id=actor_clinic_id)


def listing_reminder(clinic_id: int, provider_ids: list[int], **data) -> Event:
    """Record a reminder to a clinic that listings need checking (ids only: the digest's
    id and the listings', ``referral.reminders``)."""
    return record(LISTING_REMINDER, {"provider_ids": sorted(provider_ids),
                                     "count": len(provider_ids), **data},
                  clinic_ids=[clinic_id], email_to=[clinic_id])
