"""Notification emails to a clinic's contact address, through Flask-Mailman.

Minimum necessary: an email says what happened (a new referral, accepted, a new
message...), with the referral's number and a link to its page; never a patient
field, never message text. With ``SMTP_URL`` the mail goes over SMTP; without it
(development, the demo) it is kept in the local outbox (``OutboxEmailBackend``), which
the clinic pages show. The Message-ID is derived from the event and the clinic, so a
retried email carries the same id and the outbox stores it once.
"""

from __future__ import annotations

from flask import current_app
from flask_mailman import EmailMessage
from flask_mailman.backends.base import BaseEmailBackend
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from .events import (
    LISTING_REMINDER,
    LISTING_REPORTED,
    REFERRAL_CREATED,
    REFERRAL_MESSAGE,
    REFERRAL_REMINDER,
    REFERRAL_STATUS_CHANGED,
)
from .extensions import db, mail
from .models import OutboxEmail

#: Subjects of status-change emails, by new status.
STATUS_SUBJECTS = {
    "accepted": "Referral accepted", "rejected": "Referral declined",
    "cancelled": "Referral cancelled", "expired": "Referral expired",
    "scheduled": "Appointment scheduled", "completed": "Referral completed",
    "no_show": "Appointment missed",
}
CLINIC_HEADER = "X-Referral-Clinic"


def compose(event_type: str, data: dict, base_url: str) -> tuple[str, str]:
    """The subject and body of the email about an event (ids and statuses only; a listing
    digest's own email is ``reminders.digest_email``)."""
    base = base_url.rstrip("/")
    if event_type == LISTING_REMINDER:
        subject = "Listings need checking"
        body = (f"{data.get('count', 0)} of your listings have not been verified recently. "
                f"Patients see them as unverified until you confirm them.\n\n"
                f"Check them here: {base}/clinic\n")
        return subject, body
    if event_type == LISTING_REPORTED:
        listing = data.get("provider_id")
        subject = "A patient reported a problem with a listing"
        flagged = ("Several patients have reported it, so patients now see a notice that it "
                   "may be out of date.\n\n" if data.get("reported") else "")
        body = (f"A patient reported that your listing {listing} may be wrong.\n\n{flagged}"
                f"Read the report, then fix the listing or confirm it is current: "
                f"{base}/clinic/listings/{listing}/reports\n\n"
                "For privacy, this email does not contain what the patient wrote.\n")
        return subject, body
    number = data.get("referral_id")
    link = f"{base}/clinic/referrals/{number}"
    if event_type == REFERRAL_CREATED:
        subject = "You have a new referral"
        what = f"Your clinic has received a new referral (number {number})."
    elif event_type == REFERRAL_REMINDER:
        subject = "A referral is waiting for your answer"
        what = (f"Referral {number} has waited more than two business days for your "
                "clinic's answer. Please accept or decline it.")
    elif event_type == REFERRAL_MESSAGE:
        subject = "A new message on a referral"
        what = f"There is a new message on referral {number}."
    elif event_type == REFERRAL_STATUS_CHANGED:
        subject = STATUS_SUBJECTS.get(data.get("status"), "Referral updated")
        what = f"Referral {number} is now {str(data.get('status', '')).replace('_', ' ')}."
    else:
        subject, what = "Referral update", f"Referral {number} has changed."
    body = (f"{what}\n\nSign in to see it: {link}\n\n"
            "For privacy, this email contains no patient details.\n")
    return subject, f"{subject}\n\n{body}"


def send_email(to: str | None, clinic_id: int, subject: str, body: str,
               message_id: str) -> None:
    """Send one email now through the configured backend (raises on failure)."""
    message = EmailMessage(subject=subject, body=body, to=[to] if to else [],
                           from_email=current_app.config["MAIL_FROM"],
                           headers={"Message-ID": message_id, CLINIC_HEADER: str(clinic_id)})
    with mail.get_connection() as connection:
        connection.send_messages([message])


class OutboxEmailBackend(BaseEmailBackend):
    """A Flask-Mailman backend that keeps emails in the ``outbox_email`` table (once per
    Message-ID), for clinics to read on their pages when there is no SMTP server."""

    def send_messages(self, email_messages):
        """Store each message; a message stored already counts as sent."""
        sent = 0
        for message in email_messages:
            clinic = message.extra_headers.get(CLINIC_HEADER)
            row = {"clinic_id": int(clinic) if clinic else None,
                   "message_id": message.extra_headers["Message-ID"],
                   "to_address": ", ".join(message.to) or None,
                   "subject": message.subject, "body": message.body}
            try:
                with db.engine.begin() as connection:
                    if connection.dialect.name == "postgresql":  # a lost one is sent again
                        connection.execute(text("SET LOCAL synchronous_commit = off"))
                    connection.execute(OutboxEmail.__table__.insert(), [row])
            except IntegrityError:
                pass  # the same Message-ID stored before: a retried delivery
            sent += 1
        return sent


def clinic_outbox(clinic_id: int, limit: int = 50) -> list[OutboxEmail]:
    """The newest emails kept for a clinic in the local outbox."""
    return list(db.session.scalars(
        db.select(OutboxEmail).where(OutboxEmail.clinic_id == clinic_id)
        .order_by(OutboxEmail.id.desc()).limit(limit)))
