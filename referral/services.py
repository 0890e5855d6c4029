"""The app's services, set up once per app and reached through one accessor each.

``search_service()`` is the search index (``referral.search_service``);
``geocoder()`` locates practices (offline ZIP centroids by default). Both live on
``app.extensions["referral"]`` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .geo import make_geocoder
from .search_service import IndexSearchService, SearchService


@dataclass
class Services:
    """This app's services."""

    search: SearchService
    geocoder: object


def init_app(app: Flask, search: SearchService | None = None) -> None:
    """Create the app's services from its configuration (``search`` replaces the index)."""
    app.extensions["referral"] = Services(
        search=search or IndexSearchService(app.config["INDEX_DIR"],
                                            app.config["SEARCH_LISTING_CACHE"],
                                            app.config["SEARCH_SYNC_ON_COMMIT"]),
        geocoder=make_geocoder(app.config["GEOCODER"], app.config["GEOCODER_USER_AGENT"]))


def services(app: Flask | None = None) -> Services:
    """The services of ``app`` (default: the current app)."""
    return (app or current_app).extensions["referral"]


def search_service(app: Flask | None = None) -> SearchService:
    """The search service of ``app`` (default: the current app)."""
    return services(app).search


def warm_up(app: Flask) -> None:
    """Make this process ready to search before its first request: load the structured
    table and bring it up to the change log (a gunicorn worker calls this after its fork,
    so that no patient waits for it). Any failure (a database that does not answer, an
    unreadable index) is logged by its type and left to the first request, which tries
    again: gunicorn stops a node whose workers fail to boot."""
    import logging

    from .extensions import db

    with app.app_context():
        try:
            search_service(app).refresh(db.session)
        except Exception as error:  # noqa: BLE001 - a worker that fails here never boots
            logging.getLogger(__name__).warning(
                "search table not loaded before the first request (%s); the first "
                "search will try again", type(error).__name__)
        finally:
            db.session.remove()


def geocoder(app: Flask | None = None):
    """The configured geocoder of ``app`` (default: the current app)."""
    return services(app).geocoder
