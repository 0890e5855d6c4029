"""Mental-health provider directory and referral matching: the Flask application."""

from __future__ import annotations

import os

from flask import Flask

from config import load_config


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, API and pages, error handlers, CLI commands.

    ``config`` overrides the environment-derived configuration (tests use it). A bad
    environment variable stops here with ``config.ConfigError``. No database query runs.
    """
    from .json_provider import OrjsonProvider

    app = Flask(__name__, instance_path=os.environ.get("REFERRAL_INSTANCE_PATH") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    if config:
        app.config.from_mapping(config)
    app.json = OrjsonProvider(app)  # the same JSON, written by orjson
    app.json.sort_keys = False  # keep schema order: e.g. a crisis notice before any results
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    from .errors import scrub_logs

    scrub_logs(app)  # last: every module (and its logger) is imported by now
    return app


def register_extensions(app: Flask) -> None:
    """Bind the database, CSRF protection, request protections, geocoder and search index."""
    from . import crypto, database, hygiene, i18n, security, services
    from .extensions import csrf, mail
    from .search_sync import install_outbox_once

    hygiene.init_app(app)
    i18n.init_app(app)  # the patient pages' language (English, Spanish)
    database.init_app(app)
    csrf.init_app(app)
    security.init_app(app)
    services.init_app(app)
    install_outbox_once()
    crypto.init_app(app)  # coordination messages and webhook secrets, encrypted at rest
    mail.init_app(app)  # notification emails (SMTP_URL, or the local outbox)
    if app.config["IN_PROCESS_WORKER"]:
        from .delivery import start_in_process_worker

        app.extensions["referral_worker_stop"] = start_in_process_worker(app)


def register_blueprints(app: Flask) -> None:
    """Attach the API (and its OpenAPI document) and the web pages."""
    from .api import register_api
    from .fhir import register_fhir
    from .web import register_web

    register_api(app)
    register_web(app)
    register_fhir(app)


def register_errorhandlers(app: Flask) -> None:
    """Answer every error in the project's shape; after the API, whose handler this replaces."""
    from . import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    """Add the ``referral`` CLI commands to ``flask``/``referral``."""
    from .cli import register_cli

    register_cli(app)
