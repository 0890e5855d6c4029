"""Which listings the public FHIR API shows, as of one moment.

The rule is the patient search's: a listing is public when it is active, claimed
by a clinic, and verified within ``HIDDEN_AFTER_DAYS``. A public listing is a
Practitioner, a PractitionerRole and a HealthcareService, and a Location when it
offers in-person care. Listings verified longer ago than ``STALE_AFTER_DAYS``
(but within ``HIDDEN_AFTER_DAYS``) are public and say they are stale.

Reading a deactivated listing answers 410 Gone; an unclaimed or never-verified
(imported registry) listing, or one not verified within ``HIDDEN_AFTER_DAYS``,
answers 404 like an unknown id. Every clinic is an Organization, including
unclaimed registry organizations.

A ``Snapshot`` fixes the moment a search is evaluated at, so that every page of
one search (its ``next`` links carry the moment) applies the same cut-off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, false, func

from ..models import Provider


@dataclass(frozen=True)
class Snapshot:
    """The moment and settings one request (or one paged search) is evaluated with."""

    now: dt.datetime
    hidden_after_days: int
    stale_after_days: int
    base_url: str  # the absolute URL of /fhir on this server, for fullUrl and links

    @property
    def hidden_before(self) -> dt.datetime:
        """Listings verified before this moment are not public."""
        return self.now - dt.timedelta(days=self.hidden_after_days)

    @property
    def stale_before(self) -> dt.datetime:
        """Listings verified before this moment are flagged stale."""
        return self.now - dt.timedelta(days=self.stale_after_days)


def public_listing(snapshot: Snapshot, model=Provider):
    """SQL condition: the listing is shown to the public (see the module docstring)."""
    # ``coalesce`` keeps planners off the (unselective) index on ``active``, so that the
    # selective conditions of a search (a ZIP, a clinic, an id) choose the index.
    return and_(func.coalesce(model.active, false()).is_(True), model.clinic_id.is_not(None),
                model.last_verified_at.is_not(None),
                model.last_verified_at >= snapshot.hidden_before)


def listing_has_location(model=Provider):
    """SQL condition: the listing has a practice Location (in-person care at an address)."""
    return and_(model.in_person.is_(True), model.zip.is_not(None))


def is_public(provider: Provider, snapshot: Snapshot) -> bool:
    """The Python twin of ``public_listing`` for one loaded listing."""
    return (bool(provider.active) and provider.clinic_id is not None
            and provider.last_verified_at is not None
            and provider.last_verified_at >= snapshot.hidden_before)


def has_location(provider: Provider) -> bool:
    """The Python twin of ``listing_has_location``."""
    return bool(provider.in_person) and provider.zip is not None


def is_stale(provider: Provider, snapshot: Snapshot) -> bool:
    """Not verified within ``STALE_AFTER_DAYS`` of the snapshot."""
    return provider.last_verified_at is None or provider.last_verified_at < snapshot.stale_before
