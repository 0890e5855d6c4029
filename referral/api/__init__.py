"""The JSON API under ``/api/v1``, documented at ``/api/v1/openapi.json``."""

import flask_smorest
from webargs.flaskparser import FlaskParser

from ..extensions import api, csrf


class StrictParser(FlaskParser):
    """Unknown query parameters are errors too (each schema's ``unknown=RAISE`` applies)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": None, "querystring": None}


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose argument parsing rejects unknown parameters."""

    ARGUMENTS_PARSER = StrictParser()


def register_api(app) -> None:
    """Attach the API blueprints and the OpenAPI document to ``app``."""
    from . import clinics, matching, providers, referrals, vocabularies, webhooks

    api.init_app(app)
    api.spec.components.security_scheme(
        "clinicToken", {"type": "http", "scheme": "bearer",
                        "description": "A clinic API token (`referral clinic create`)."})
    for module in (providers, matching, referrals, clinics, vocabularies, webhooks):
        api.register_blueprint(module.blp, url_prefix="/api/v1" + module.blp.url_prefix)
        csrf.exempt(module.blp)  # the API authenticates with bearer tokens, not cookies
