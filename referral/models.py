"""Database models: clinics, their people and API tokens, provider listings, claims and the
audit trail.

The database is the source of truth; the search index is derived from it.
List-valued listing attributes (modalities, concerns, licensed states, ...) are
JSON arrays of canonical vocabulary values (JSONB on PostgreSQL).

Concurrency control: listings and referrals carry a row ``version`` that SQLAlchemy
checks and bumps on every ORM update (``version_id_col``). The UPDATE says
``WHERE id = :id AND version = :read``, so a writer whose row another writer changed
after it was read matches no row and gets ``StaleDataError`` (answered 409, nothing
written), and what a writer checked on the row it read is exactly what gets stored.
Core statements that change these rows bypass the check and must bump ``version``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    and_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .limits import MAX_FEE


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use timezone-aware UTC")
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


JSONValue = JSON().with_variant(JSONB(), "postgresql")


class Clinic(db.Model):
    """A clinic or practice that keeps its own provider listings."""

    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    organization_npi: Mapped[str | None] = mapped_column(String(10), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: ``approved`` (may publish listings), ``pending`` (signed up, waits for an operator),
    #: ``rejected``, ``unclaimed`` (an organization imported from NPPES that nobody runs)
    #: or ``merged`` (an unclaimed organization a clinic claimed: its listings moved there).
    status: Mapped[str] = mapped_column(String(20), default="approved",
                                        server_default="approved")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(500))

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="clinic")


class ApiToken(db.Model):
    """A clinic's API token. Only its SHA-256 hash is stored; the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    clinic: Mapped[Clinic] = relationship(back_populates="tokens")


class ClinicSession(db.Model):
    """A signed-in browser session of the clinic pages, kept server-side so that signing
    out (or revoking the token it signed in with) ends it on every node.

    The cookie carries a random session key; only its SHA-256 hash is stored.
    """

    __tablename__ = "clinic_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The clinic signed in to; None for an operator (the directory's own staff).
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                                  index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The person signed in (email and password); None for a token sign-in.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                                index=True)

    clinic: Mapped[Clinic | None] = relationship()
    token: Mapped[ApiToken | None] = relationship()
    user: Mapped[User | None] = relationship()


class User(db.Model):
    """A person who signs in with email and password: a clinic's ``admin`` or ``staff``, or
    an ``operator`` of the directory (no clinic). The password is an argon2 hash."""

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'staff', 'operator')", name="role"),
        CheckConstraint("(role = 'operator') = (clinic_id IS NULL)", name="operator_no_clinic"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                                  index=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The TOTP secret, encrypted (Fernet); set once the person confirmed a first code.
    totp_ciphertext: Mapped[str | None] = mapped_column(Text)
    #: The time step of the last TOTP code accepted: a code works once, never again.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    clinic: Mapped[Clinic | None] = relationship()


class UserLink(db.Model):
    """A one-time emailed link (email confirmation, password reset): only its hash is kept;
    it works once and until it expires."""

    __tablename__ = "user_link"
    __table_args__ = (CheckConstraint("purpose IN ('confirm', 'reset')", name="purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Claim(db.Model):
    """A clinic's claim of a registry record: an unclaimed listing (``listing``) or an
    unclaimed organization (``organization``), with the claimant's attestation. It waits
    for an operator; the first approved claim of an NPI wins."""

    __tablename__ = "claim"
    __table_args__ = (
        CheckConstraint("kind IN ('listing', 'organization')", name="kind"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        Index("ix_claim_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(String(20))
    npi: Mapped[str] = mapped_column(String(10), index=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider.id",
                                                               ondelete="CASCADE"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id",
                                                                   ondelete="CASCADE"))
    attestation: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    requested_by_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_token.id", ondelete="SET NULL"))
    decided_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    clinic: Mapped[Clinic] = relationship(foreign_keys=[clinic_id])
    provider: Mapped[Provider | None] = relationship()
    organization: Mapped[Clinic | None] = relationship(foreign_keys=[organization_id])


class ActivityLog(db.Model):
    """Account and directory decisions that are not listing changes: sign-ups, approvals
    and rejections, claims decided, users and tokens managed; who acted and through which
    channel."""

    __tablename__ = "activity_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(40))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                                  index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                           ondelete="SET NULL"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(10))
    details: Mapped[dict] = mapped_column(JSONValue, default=dict)


class Provider(db.Model):
    """A therapist's or prescriber's listing."""

    __tablename__ = "provider"
    __table_args__ = (
        CheckConstraint("role IN ('therapist', 'prescriber')", name="role"),
        CheckConstraint("fee_min IS NULL OR (fee_min >= 0 AND fee_min <= fee_max)",
                        name="fee_range"),
        CheckConstraint(f"fee_max IS NULL OR fee_max <= {MAX_FEE}", name="fee_max"),
        Index("ix_provider_clinic_verified", "clinic_id", "last_verified_at"),
        Index("ix_provider_role_state", "role", "state"),
        # The health tally (``referral.health_tally``) reads the listings kept by clinics
        # whose verification crossed a line of age since it was last folded: a range of
        # this index, never the whole table.
        Index("ix_provider_listed_verified", "last_verified_at", "state", "clinic_id",
              sqlite_where=text("active IS 1 AND clinic_id IS NOT NULL"),
              postgresql_where=text("active IS true AND clinic_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    npi: Mapped[str] = mapped_column(String(10), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    credentials: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    provider_type: Mapped[str] = mapped_column(String(40))
    taxonomy_codes: Mapped[list] = mapped_column(JSONValue, default=list)
    modalities: Mapped[list] = mapped_column(JSONValue, default=list)
    concerns: Mapped[list] = mapped_column(JSONValue, default=list)
    age_groups: Mapped[list] = mapped_column(JSONValue, default=list)
    languages: Mapped[list] = mapped_column(JSONValue, default=list)
    specialties: Mapped[list] = mapped_column(JSONValue, default=list)
    gender: Mapped[str | None] = mapped_column(String(60))
    bio: Mapped[str | None] = mapped_column(Text)
    telehealth: Mapped[bool] = mapped_column(default=False)
    in_person: Mapped[bool] = mapped_column(default=True)
    licensed_states: Mapped[list] = mapped_column(JSONValue, default=list)
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    zip: Mapped[str | None] = mapped_column(String(5), index=True)
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    phone: Mapped[str | None] = mapped_column(String(10))
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    fee_min: Mapped[int | None]
    fee_max: Mapped[int | None]
    sliding_scale: Mapped[bool] = mapped_column(default=False)
    insurance: Mapped[list] = mapped_column(JSONValue, default=list)
    accepting_new_patients: Mapped[bool] = mapped_column(default=True)
    accepts_coordinated_care: Mapped[bool] = mapped_column(default=False)
    wait_days: Mapped[int | None]
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    last_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: When open patient reports first met the reported rule (``referral.reports``): the
    #: listing is then ``reported`` (ranked after verified ones, with a notice) until its
    #: clinic resolves the reports; ``None`` otherwise.
    reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The listing's open patient reports, kept by a trigger on ``listing_report`` (every
    #: change of a report's openness updates this row, so it serializes with the
    #: listing's other writes): what the health tally counts.
    open_reports: Mapped[int] = mapped_column(default=0, server_default="0")
    active: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: Row version, checked and bumped by every ORM update (see the module docstring).
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    clinic: Mapped[Clinic | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @hybrid_property
    def listed(self) -> bool:
        """A listing patients can find: active and kept by a clinic. A registry record no
        clinic has claimed (an NPPES import) is not listed: no search, page or read of the
        public API shows it, and it is in neither part of the search index."""
        return bool(self.active) and self.clinic_id is not None

    @listed.inplace.expression
    @classmethod
    def _listed_expression(cls):
        return and_(cls.active.is_(True), cls.clinic_id.is_not(None))


#: Why a patient reports a listing (``POST /providers/<id>/reports``).
REPORT_REASONS = ("could_not_reach", "not_accepting", "insurance_not_accepted",
                  "wrong_contact", "wrong_location", "no_longer_practicing", "other")


class ListingReport(db.Model):
    """A patient's report that a listing is wrong (no sign-in, no personal data).

    ``reporter_key`` is a keyed hash of the reporter's client address and the listing
    (never the address itself): it tells distinct reporters apart for the reported rule.
    The optional text is stored encrypted and shown only to the listing's clinic and the
    operators. ``status``: open, resolved (by the clinic: fixed or verified, with a note),
    confirmed (an operator confirmed it; ``no_longer_practicing`` then deactivates the
    listing) or dismissed (by an operator).
    """

    __tablename__ = "listing_report"
    __table_args__ = (
        CheckConstraint("reason IN (" + ", ".join(f"'{r}'" for r in REPORT_REASONS) + ")",
                        name="reason"),
        CheckConstraint("status IN ('open', 'resolved', 'confirmed', 'dismissed')",
                        name="status"),
        Index("ix_listing_report_open", "provider_id", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(30))
    text_ciphertext: Mapped[str | None] = mapped_column(Text)
    reporter_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: fixed, verified (the clinic), confirmed, dismissed (an operator)
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    resolved_by_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_token.id", ondelete="SET NULL"))

    provider: Mapped[Provider] = relationship()


class ProviderAudit(db.Model):
    """Who changed which fields of which listing, and when (old and new values)."""

    __tablename__ = "provider_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"),
                                             index=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    action: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict] = mapped_column(JSONValue, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20), default="api")
    #: Who acted: a person (``user_id``) or an API token (``token_id``), or neither (an
    #: import or a command), and through which channel: page, api, import or cli.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                           ondelete="SET NULL"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(10), default="api", server_default="api")

    provider: Mapped[Provider] = relationship()
    user: Mapped[User | None] = relationship()
    token: Mapped[ApiToken | None] = relationship()


class ProviderChange(db.Model):
    """The change log (outbox): one row per committed change of a listing.

    Written in the same transaction as the change (see ``referral.search_sync``),
    so the search index can follow the database: its position is the last id
    applied. Ids grow in commit order (writers serialize on PostgreSQL).
    """

    __tablename__ = "provider_change"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    provider_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Referral(db.Model):
    """A therapist's referral of a patient to a prescriber (protected health information).

    Only the minimum is kept: an opaque patient reference chosen by the referring
    clinic, the patient's state, concern codes, urgency, contact preference and the
    recorded consent. Visible only to the two clinics; never logged.
    """

    __tablename__ = "referral"
    __table_args__ = (
        CheckConstraint("consent_to_coordinate", name="consent"),
        Index("ix_referral_sender", "sender_clinic_id", "created_at"),
        Index("ix_referral_receiver", "receiver_clinic_id", "created_at"),
        Index("ix_referral_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    prescriber_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    sender_clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    receiver_clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    patient_ref: Mapped[str] = mapped_column(String(64))
    patient_state: Mapped[str] = mapped_column(String(2))
    concerns: Mapped[list] = mapped_column(JSONValue, default=list)
    urgency: Mapped[str] = mapped_column(String(20))
    contact_preference: Mapped[str] = mapped_column(String(20))
    consent_to_coordinate: Mapped[bool]
    status: Mapped[str] = mapped_column(String(20), default="requested")
    reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: Row version, checked and bumped by every ORM update (see the module docstring).
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    # The coordinated-care loop (migration 0006): the booked time and the outcome code
    appointment_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The zone the appointment was booked in (shown in it; ``None``: shown in UTC).
    appointment_time_zone: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(40))

    therapist: Mapped[Provider] = relationship(foreign_keys=[therapist_id])
    prescriber: Mapped[Provider] = relationship(foreign_keys=[prescriber_id])
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral", order_by="ReferralEvent.id")

    __mapper_args__ = {"version_id_col": version}


class ReferralEvent(db.Model):
    """One status change of a referral: from what, to what, by which clinic, when."""

    __tablename__ = "referral_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"),
                                             index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    reason: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    appointment_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    appointment_time_zone: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(40))

    referral: Mapped[Referral] = relationship(back_populates="events")



# ---------------------------------------------------------------------------
# The coordinated-care loop: one open referral per patient and prescriber, the
# coordination thread, what each clinic has seen, and notifications (migration 0006)

#: Statuses in which a referral is still open (one per sender, patient_ref, prescriber).
OPEN_STATUSES = ("requested", "accepted", "scheduled", "no_show")

Index("uq_referral_open", Referral.sender_clinic_id, Referral.patient_ref,
      Referral.prescriber_id, unique=True,
      sqlite_where=Referral.status.in_(OPEN_STATUSES),
      postgresql_where=Referral.status.in_(OPEN_STATUSES))


class ReferralMessage(db.Model):
    """One message of a referral's coordination thread, encrypted at rest (Fernet).

    Only the two clinics of the referral read it; its text is never logged and never
    sent in a notification (``referral.messages``).
    """

    __tablename__ = "referral_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"),
                                             index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralView(db.Model):
    """When a clinic last opened a referral (for the inbox's new and unread markers)."""

    __tablename__ = "referral_view"

    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"),
                                             primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                           primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(db.Model):
    """A clinic's webhook: where to post which event types, signed with a secret.

    The secret is encrypted at rest (Fernet) and shown once, when created.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                           index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list] = mapped_column(JSONValue, default=list)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Event(db.Model):
    """The notification outbox: one row per referral creation, status change, message and
    listing reminder, written in the same transaction as the change.

    ``data`` holds ids and statuses only, never patient fields or message text;
    ``public_id`` is the webhook-id (the receivers' idempotency key).
    """

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), index=True)
    actor_clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    data: Mapped[dict] = mapped_column(JSONValue, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(db.Model):
    """One notification of one event to one webhook endpoint or one clinic's email: a
    queue item the delivery workers claim (lease), try, and retry with backoff."""

    __tablename__ = "delivery"
    __table_args__ = (
        CheckConstraint("channel IN ('webhook', 'email')", name="channel"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
        Index("ix_delivery_endpoint", "endpoint_id", "id"),
        Index("uq_delivery_event_target", "event_id", "channel", "clinic_id", "endpoint_id",
              unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("event.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    #: pending (waiting or in flight), delivered, failed (gave up), skipped, cancelled
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    #: The start of the receiver's answer, at most 1 KB.
    last_response: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[Event] = relationship()
    endpoint: Mapped[WebhookEndpoint | None] = relationship()


class OutboxEmail(db.Model):
    """An email kept in the local outbox instead of sent (no ``SMTP_URL``: development and
    the demo); the clinic pages show a clinic its own."""

    __tablename__ = "outbox_email"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"),
                                                  index=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------------------
# Reminders (issue 14, migration 0010): one listing digest per clinic and ISO week, its
# one-click "Still current" links, one reminder per unanswered referral, and the daily
# jobs' runs. Unique keys make each of them happen once, whatever runs at the same time.


class ReminderDigest(db.Model):
    """The one reminder digest a clinic gets in a period (an ISO week, ``2026-W49``): its
    listings that go stale soon or are stale. The unique key is what makes two runs at
    the same moment (two workers, two nodes) send one digest."""

    __tablename__ = "reminder_digest"
    __table_args__ = (
        Index("uq_reminder_digest_clinic_period", "clinic_id", "period", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(10))
    event_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("event.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ListingLink(db.Model):
    """A digest's one-click "Still current" link for one listing: only the hash of its
    key is stored; it works once, until ``expires_at``, and only for ``provider_id``."""

    __tablename__ = "listing_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("reminder_digest.id", ondelete="CASCADE"),
                                           index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"),
                                             index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Whether the listing was stale already when the digest was made (else: soon).
    stale: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    digest: Mapped[ReminderDigest] = relationship()
    provider: Mapped[Provider] = relationship()


class ReferralReminder(db.Model):
    """The one reminder to a receiving clinic about a referral it has not answered within
    two business days (the primary key makes it once per referral)."""

    __tablename__ = "referral_reminder"

    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"),
                                             primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("event.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DailyRun(db.Model):
    """One run of a daily job (``expire-referrals``, ``remind-stale``) on one UTC day: the
    worker that inserts the row first runs it; the others see the key taken."""

    __tablename__ = "daily_run"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    worker: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[int | None]


# ---------------------------------------------------------------------------
# The health tally (migration 0011, ``referral.health_tally``): the directory-health counts
# of the listings kept by clinics, per practice state and clinic, kept current by the
# database itself (triggers on ``provider`` write one change row per listing that enters
# or leaves a group), so that the figures never read every listing.

#: Plain counts per group: listings, reported ones, ones taking new patients, ones never
#: verified, and their open patient reports.
TALLY_COUNTS = ("listings", "reported", "accepting_new_patients", "never_verified",
                "open_reports")
#: Counts of listings verified since a moment that moves with the clock (``as_of``):
#: within the stale window, within the hidden window (``shown``), and newer than each of
#: the 12 bucket lines of the verification-age chart (30, 60, ..., 360 days).
TALLY_SINCE = ("verified", "shown", *[f"newer_{k}" for k in range(1, 13)])

health_tally = db.Table(
    "health_tally",
    # '' for listings without a practice state (a key column cannot be NULL)
    Column("state", String(2), primary_key=True),
    Column("clinic_id", Integer, primary_key=True),
    *[Column(name, Integer, nullable=False, server_default="0")
      for name in (*TALLY_COUNTS, *TALLY_SINCE)],
)

health_tally_change = db.Table(
    "health_tally_change",
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("state", String(2)),
    Column("clinic_id", Integer, nullable=False),
    Column("last_verified_at", UTCDateTime),
    Column("reported", Boolean, nullable=False),
    Column("accepting_new_patients", Boolean, nullable=False),
    Column("open_reports", Integer, nullable=False),
    #: +1: the listing joined this group (as described); -1: it left it
    Column("delta", SmallInteger, nullable=False),
)

health_tally_clock = db.Table(
    "health_tally_clock",
    Column("id", Integer, primary_key=True),  # one row: 1
    #: The moment the ``TALLY_SINCE`` counts of ``health_tally`` are counted at.
    Column("as_of", UTCDateTime, nullable=False),
    #: Bumped by every fold: a reader that computed with one generation and finds another
    #: reads again.
    Column("generation", Integer, nullable=False),
    Column("stale_after_days", Integer, nullable=False),
    Column("hidden_after_days", Integer, nullable=False),
)
