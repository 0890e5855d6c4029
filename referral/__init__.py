"""Mental-health provider directory and referral matching: the Flask application."""

from __future__ import annotations

import os

from flask import Flask

from config import load_config

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, API, error handlers, CLI commands.

    ``config`` overrides the environment-derived configuration (tests use it).
    No database query runs here.
    """
    app = Flask(__name__, instance_path=os.environ.get("REFERRAL_INSTANCE_PATH") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    if config:
        app.config.from_mapping(config)
    app.json.sort_keys = False  # keep schema order: e.g. a crisis notice before any results
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind the database, migrations, geocoder and search index to ``app``."""
    from .extensions import csrf, db, migrate
    from .geo import make_geocoder
    from .search_sync import SearchState, install_outbox_once

    db.init_app(app)
    csrf.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    app.extensions["referral.geocoder"] = make_geocoder(
        app.config["GEOCODER"], app.config["GEOCODER_USER_AGENT"])
    app.extensions["referral.search"] = SearchState(app.config["INDEX_DIR"],
                                                    app.config["SEARCH_LISTING_CACHE"])
    install_outbox_once()


def register_blueprints(app: Flask) -> None:
    """Attach the API (and its OpenAPI document) and the web pages."""
    from .api import register_api
    from .fhir import register_fhir
    from .web import register_web

    register_api(app)
    register_web(app)
    register_fhir(app)


def register_errorhandlers(app: Flask) -> None:
    """Map domain errors to the API's error shape; limits, headers, CORS, outages."""
    from .errors import register_error_handlers
    from .security import init_security

    register_error_handlers(app)
    init_security(app)


def register_commands(app: Flask) -> None:
    """Add the ``referral`` CLI commands to ``flask``/``referral``."""
    from .cli import register_cli

    register_cli(app)
