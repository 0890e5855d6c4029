"""The coordination thread of a referral: messages between its two clinics.

Only the two clinics of the referral read or write it (anyone else: not found). The
text is encrypted at rest (``referral.crypto``), never logged, and never put in a
notification: a new message sends an event with the referral and message ids only
("a new message").
"""

from __future__ import annotations

from sqlalchemy import select

from . import events
from .crypto import encryptor
from .extensions import db
from .models import Clinic, Referral, ReferralMessage, utcnow


def add_message(referral: Referral, clinic_id: int, text: str) -> ReferralMessage:
    """Add a message to the thread in the current transaction (no event, no commit)."""
    message = ReferralMessage(referral_id=referral.id, clinic_id=clinic_id,
                              ciphertext=encryptor().encrypt(text), created_at=utcnow())
    db.session.add(message)
    db.session.flush()
    return message


def post_message(clinic: Clinic, referral_id: int, text: str) -> dict:
    """Write a message to a referral's thread as ``clinic``; notify the other clinic."""
    from .referrals import visible_referral

    referral = visible_referral(clinic, referral_id)
    message = add_message(referral, clinic.id, text)
    events.referral_event(referral, events.REFERRAL_MESSAGE, clinic.id, message_id=message.id)
    db.session.commit()
    return _readable(message, text)


def thread(clinic: Clinic, referral_id: int) -> list[dict]:
    """The referral's messages, oldest first, decrypted for one of its two clinics."""
    from .referrals import visible_referral

    referral = visible_referral(clinic, referral_id)
    messages = db.session.scalars(select(ReferralMessage)
                                  .where(ReferralMessage.referral_id == referral.id)
                                  .order_by(ReferralMessage.id))
    decrypt = encryptor().decrypt
    return [_readable(message, decrypt(message.ciphertext)) for message in messages]


def _readable(message: ReferralMessage, text: str) -> dict:
    return {"id": message.id, "referral_id": message.referral_id,
            "author_clinic_id": message.clinic_id, "text": text,
            "created_at": message.created_at}


def rotate_keys() -> int:
    """Re-encrypt every message, listing report text and webhook secret with the first
    configured key; return how many values were rewritten (``referral rotate-keys``)."""
    from .models import ListingReport, WebhookEndpoint

    rotate = encryptor().rotate
    count = 0
    for model, column in ((ReferralMessage, "ciphertext"),
                          (ListingReport, "text_ciphertext"),
                          (WebhookEndpoint, "secret_ciphertext")):
        last = 0
        while True:
            batch = db.session.scalars(select(model).where(model.id > last,
                                                           getattr(model, column).is_not(None))
                                       .order_by(model.id).limit(500)).all()
            if not batch:
                break
            for row in batch:
                setattr(row, column, rotate(getattr(row, column)))
                count += 1
            last = batch[-1].id
            db.session.commit()
    return count
