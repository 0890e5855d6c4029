"""The app-bound entry points of the patient-facing questions, used by the API and the pages.

Each binds the plain business function (``search_providers``, ``match_pairs``,
``prescribers_for_therapist``) to this app's search service, database session,
listing rendering and freshness settings, so views make one call with the
validated parameters.
"""

from __future__ import annotations

from flask import current_app

from .extensions import db
from .matching import match_pairs, prescribers_for_therapist
from .schemas.listings import listing_dump
from .search import freshness, search_providers
from .services import search_service


def patient_search(params: dict) -> dict:
    """A patient search (``search_providers``) for validated search parameters."""
    return search_providers(search_service(), db.session, params, listing_dump,
                            **freshness(current_app.config))


def pairs(params: dict) -> dict:
    """Therapist + prescriber pairs (``match_pairs``) for validated parameters."""
    return match_pairs(search_service(), db.session, params, listing_dump,
                       **freshness(current_app.config))


def prescriber_finder(therapist_id: int, params: dict) -> dict:
    """Prescribers a therapist can refer to (``prescribers_for_therapist``)."""
    return prescribers_for_therapist(search_service(), db.session, therapist_id, params,
                                     listing_dump, **freshness(current_app.config))
