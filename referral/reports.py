"""Patients' reports of wrong listings ("ghost listings"), as plain operations.

Anyone may report an active listing, without signing in: a reason and, optionally, up
to 500 characters of text (cleaned by the one cleaning rule in the schema, stored
encrypted, shown only to the listing's clinic and the operators, never logged and never
in a notification). The reporter is known only by ``reporter_key``, a keyed hash
(HMAC-SHA256 under ``SECRET_KEY``) of the client address and the listing: it tells
reporters apart and cannot be turned back into the address, which is never stored.

**The reported rule.** A listing becomes ``reported`` (``Provider.reported_at`` set)
when open reports from at least ``REPORTED_MIN_REPORTERS`` (3) distinct reporters were
filed within ``REPORTED_WINDOW_DAYS`` (30). It stays reported until its clinic resolves
the reports, by editing the listing (``fixed``) or verifying it (``verified``): a wrong
listing does not become right by waiting. An operator may confirm a report (the
listing is then reported whatever the count; a confirmed ``no_longer_practicing``
deactivates it) or dismiss it (the rule is evaluated again without it).

**Concurrency.** Filing a report locks the listing's row first (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite serializes writers from the first write on, and the
listing is read again after it), then inserts the report and counts. So of two
reports filed at the same moment the second counts the first: both cannot miss the
threshold, and only the first to reach it writes ``reported_at``.

Every report notifies the listing's clinic (``listing.reported``: webhook and email,
ids and the reason code only) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from flask import current_app
from sqlalchemy import func, select

from . import events
from .accounts import log_activity
from .actors import current_actor
from .crypto import encryptor
from .errors import Conflict, Invalid, NotFound
from .extensions import db
from .limits import MAX_REPORT_TEXT
from .listings import commit_or_conflict, record_audit
from .models import REPORT_REASONS, Clinic, ListingReport, Provider, utcnow

#: Distinct reporters whose open reports mark a listing reported...
REPORTED_MIN_REPORTERS = 3
#: ...when filed within this many days.
REPORTED_WINDOW_DAYS = 30
#: How the clinic resolves reports, and how an operator decides one.
CLINIC_RESOLUTIONS = ("fixed", "verified")
OPERATOR_DECISIONS = ("confirm", "dismiss")


def reporter_key(client_address: str, provider_id: int) -> str:
    """The keyed hash that stands for one reporter of one listing (never the address)."""
    message = f"{client_address}|{provider_id}".encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), message,
                    hashlib.sha256).hexdigest()


def _locked_listing(provider_id: int) -> Provider:
    """The active listing, its row locked for this transaction (PostgreSQL) and read anew."""
    provider = db.session.scalars(
        select(Provider).where(Provider.id == provider_id).with_for_update()
        .execution_options(populate_existing=True)).one_or_none()
    if provider is None or not provider.listed:
        raise NotFound(f"No active provider listing has id {provider_id}.")
    return provider


def distinct_reporters(provider_id: int, now: dt.datetime | None = None) -> int:
    """How many distinct reporters have open reports on the listing within the window."""
    since = (now or utcnow()) - dt.timedelta(days=REPORTED_WINDOW_DAYS)
    return db.session.scalar(
        select(func.count(func.distinct(ListingReport.reporter_key)))
        .where(ListingReport.provider_id == provider_id, ListingReport.status == "open",
               ListingReport.created_at >= since))


def file_report(provider_id: int, reason: str, text: str | None,
                client_address: str) -> ListingReport:
    """File a patient's report on an active listing, apply the reported rule, notify the
    clinic, and commit. ``text`` is already cleaned (the schema's one cleaning rule)."""
    if reason not in REPORT_REASONS:
        raise Invalid("Choose one of the reasons.", {"reason": ["Not a known reason."]})
    if text is not None and len(text) > MAX_REPORT_TEXT:
        raise Invalid("The text is too long.",
                      {"text": [f"At most {MAX_REPORT_TEXT} characters."]})
    provider = _locked_listing(provider_id)
    now = utcnow()
    report = ListingReport(provider_id=provider.id, reason=reason,
                           text_ciphertext=encryptor().encrypt(text) if text else None,
                           reporter_key=reporter_key(client_address, provider.id),
                           status="open", created_at=now)
    db.session.add(report)
    db.session.flush()
    if provider.reported_at is None and distinct_reporters(provider.id, now) >= \
            REPORTED_MIN_REPORTERS:
        db.session.refresh(provider)  # SQLite: this transaction writes now; read it anew
        if provider.reported_at is None:
            provider.reported_at = now
    _notify(provider, report)
    commit_or_conflict()
    return report


def _notify(provider: Provider, report: ListingReport) -> None:
    """The ``listing.reported`` event to the listing's clinic (ids and the reason only)."""
    if provider.clinic_id is None:
        return  # an unclaimed registry listing has nobody to tell; operators see it
    events.record(events.LISTING_REPORTED,
                  {"provider_id": provider.id, "report_id": report.id,
                   "reason": report.reason, "reported": provider.reported_at is not None},
                  clinic_ids=[provider.clinic_id], email_to=[provider.clinic_id])


# ---------------------------------------------------------------------------
# Reading


def report_text(report: ListingReport) -> str | None:
    """The report's text, decrypted (for the listing's clinic and the operators only)."""
    return encryptor().decrypt(report.text_ciphertext) if report.text_ciphertext else None


def readable(report: ListingReport) -> dict:
    """A report as its clinic and the operators see it (with the decrypted text)."""
    return {"id": report.id, "provider_id": report.provider_id, "reason": report.reason,
            "text": report_text(report), "status": report.status,
            "created_at": report.created_at, "resolved_at": report.resolved_at,
            "resolution": report.resolution, "resolution_note": report.resolution_note}


def open_report_counts(clinic: Clinic) -> dict[int, int]:
    """``{provider_id: open reports}`` of the clinic's listings that have any."""
    return dict(db.session.execute(
        select(ListingReport.provider_id, func.count())
        .join(Provider, Provider.id == ListingReport.provider_id)
        .where(Provider.clinic_id == clinic.id, ListingReport.status == "open")
        .group_by(ListingReport.provider_id)).all())


def clinic_reports(clinic: Clinic, provider_id: int | None = None,
                   open_only: bool = False) -> list[ListingReport]:
    """The reports on the clinic's listings (or one of them), newest first."""
    query = (select(ListingReport).join(Provider, Provider.id == ListingReport.provider_id)
             .where(Provider.clinic_id == clinic.id))
    if provider_id is not None:
        query = query.where(ListingReport.provider_id == provider_id)
    if open_only:
        query = query.where(ListingReport.status == "open")
    return db.session.scalars(query.order_by(ListingReport.created_at.desc(),
                                             ListingReport.id.desc()).limit(500)).all()


def listings_with_open_reports() -> list[dict]:
    """For operators: listings with open reports, most reported first, with the reports."""
    reports = db.session.scalars(
        select(ListingReport).where(ListingReport.status == "open")
        .order_by(ListingReport.created_at.desc()).limit(1000)).all()
    grouped: dict[int, dict] = {}
    for report in reports:
        entry = grouped.setdefault(report.provider_id,
                                   {"provider": report.provider, "reports": []})
        entry["reports"].insert(0, readable(report))  # oldest first within a listing
    return sorted(grouped.values(), key=lambda e: (-len(e["reports"]), e["provider"].id))


# ---------------------------------------------------------------------------
# Resolving


def close_open_reports(provider: Provider, resolution: str, note: str | None) -> int:
    """Resolve every open report on the listing (in the current transaction) and clear
    ``reported_at``; return how many were open. Called by every edit and verification."""
    actor = current_actor()
    now = utcnow()
    with db.session.no_autoflush:  # the listing's change is flushed at commit (row version)
        open_reports = db.session.scalars(select(ListingReport).where(
            ListingReport.provider_id == provider.id, ListingReport.status == "open")).all()
    for report in open_reports:
        report.status, report.resolution, report.resolution_note = "resolved", resolution, note
        report.resolved_at = now
        report.resolved_by_user_id, report.resolved_by_token_id = actor.user_id, actor.token_id
    if provider.reported_at is not None:
        provider.reported_at = None
    return len(open_reports)


def clinic_report(clinic: Clinic, provider_id: int, report_id: int) -> ListingReport:
    """One report on one of ``clinic``'s listings; anyone else's answers not found."""
    report = db.session.get(ListingReport, report_id)
    if report is None or report.provider_id != provider_id or \
            report.provider.clinic_id != clinic.id:
        raise NotFound(f"Your clinic has no report {report_id} on listing {provider_id}.")
    return report


def resolve(clinic: Clinic, provider_id: int, report_id: int, resolution: str,
            note: str) -> ListingReport:
    """The clinic resolves a report, with a note: ``verified`` (the listing is right as it
    is) or ``fixed`` (it was corrected). Either attests the listing as current now, and
    resolves every open report on it (clearing ``reported``)."""
    report = clinic_report(clinic, provider_id, report_id)
    if resolution not in CLINIC_RESOLUTIONS:
        raise Invalid("Choose how the report was resolved.",
                      {"resolution": ["Must be fixed or verified."]})
    if report.status != "open":
        raise Conflict(f"Report {report.id} is {report.status} already.",
                       {"status": [report.status]})
    provider = report.provider
    old = provider.last_verified_at
    provider.last_verified_at = utcnow()
    count = close_open_reports(provider, resolution, note)
    record_audit(provider, clinic, "verify", {
        "last_verified_at": {"old": old, "new": provider.last_verified_at},
        "reports_resolved": {"old": count, "new": 0}})
    commit_or_conflict()
    return report


def decide(report_id: int, decision: str) -> ListingReport:
    """An operator confirms or dismisses a report (audited in the activity log).

    Confirming marks the listing reported; a confirmed ``no_longer_practicing`` report
    deactivates the listing (the listing operation, audited). Dismissing takes the report
    out of the rule, which is evaluated again.
    """
    if decision not in OPERATOR_DECISIONS:
        raise Invalid("Decide confirm or dismiss.", {"decision": ["Must be confirm or dismiss."]})
    report = db.session.scalars(  # locked: two operators deciding at once decide once
        select(ListingReport).where(ListingReport.id == report_id).with_for_update()
        .execution_options(populate_existing=True)).one_or_none()
    if report is None:
        raise NotFound(f"No report has id {report_id}.")
    if report.status != "open":
        raise Conflict(f"Report {report.id} is {report.status} already.",
                       {"status": [report.status]})
    provider = db.session.scalars(
        select(Provider).where(Provider.id == report.provider_id).with_for_update()
        .execution_options(populate_existing=True)).one()
    now = utcnow()
    actor = current_actor()
    report.status = "confirmed" if decision == "confirm" else "dismissed"
    report.resolution = "confirmed" if decision == "confirm" else "dismissed"
    report.resolved_at = now
    report.resolved_by_user_id = actor.user_id
    log_activity(f"report_{report.status}", provider.clinic_id,
                 {"report_id": report.id, "provider_id": provider.id, "reason": report.reason})
    if decision == "dismiss":
        db.session.flush()
        if provider.reported_at is not None and not _still_reported(provider, now):
            provider.reported_at = None
    elif provider.reported_at is None:
        provider.reported_at = now
    if decision == "confirm" and report.reason == "no_longer_practicing" and provider.active:
        if provider.clinic is not None:
            return _deactivated(provider, report)
        provider.active = False
        record_audit(provider, None, "deactivate", {"active": {"old": True, "new": False}})
    commit_or_conflict()
    return report


def _deactivated(provider: Provider, report: ListingReport) -> ListingReport:
    """Deactivate a clinic's listing through the listing operation (audited; it commits
    this transaction, the decision with it)."""
    from .listings import deactivate_provider

    deactivate_provider(provider.clinic, provider.id)
    return report


def _still_reported(provider: Provider, now: dt.datetime) -> bool:
    """Whether the listing still meets the reported rule, or an operator confirmed a report
    on it since its clinic last verified it."""
    if distinct_reporters(provider.id, now) >= REPORTED_MIN_REPORTERS:
        return True
    confirmed = select(func.count()).where(ListingReport.provider_id == provider.id,
                                           ListingReport.status == "confirmed")
    if provider.last_verified_at is not None:
        confirmed = confirmed.where(ListingReport.resolved_at >= provider.last_verified_at)
    return db.session.scalar(confirmed) > 0
