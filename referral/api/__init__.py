"""The JSON API under ``/api/v1``, documented at ``/api/v1/openapi.json``."""

import flask_smorest
from marshmallow import ValidationError, missing
from webargs.flaskparser import FlaskParser

from ..extensions import api, csrf
from ..schemas.errors import ErrorSchema
from .docs import ErrorResponsesPlugin


class StrictParser(FlaskParser):
    """Unknown query parameters are errors too (each schema's ``unknown=RAISE`` applies),
    and an operation that takes a JSON body needs one (``{}`` at least)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": None, "querystring": None}

    def load_json(self, req, schema):
        """The JSON body; a missing one is a 422 like any other invalid input."""
        data = super().load_json(req, schema)
        if data is missing:
            self.handle_error(ValidationError({"json": {"_schema": [
                "Send a JSON object as the body (Content-Type: application/json)."]}}),
                req, schema, error_status_code=422, error_headers=None)
        return data


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose argument parsing rejects unknown parameters."""

    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema, **kwargs):
        """flask-smorest's ``arguments``, with a schema class made into its instance once
        here: webargs would otherwise make one per request (copying every declared field,
        about a twentieth of a search's time). A schema keeps no state between loads."""
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, **kwargs)


def register_api(app) -> None:
    """Attach the API blueprints and the OpenAPI document to ``app``."""
    from . import (
        claims,
        clinics,
        matching,
        operator,
        providers,
        referrals,
        vocabularies,
        webhooks,
    )

    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app, spec_kwargs={"extra_plugins": [ErrorResponsesPlugin()]})
    api.spec.components.security_scheme(
        "clinicToken", {"type": "http", "scheme": "bearer",
                        "description": "A clinic API token (`referral clinic create`)."})
    api.spec.components.security_scheme(
        "operatorSession", {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "An operator's signed-in session (/clinic/sign-in)."})
    for module in (providers, matching, referrals, clinics, claims, vocabularies, webhooks,
                   operator):
        api.register_blueprint(module.blp, url_prefix="/api/v1" + module.blp.url_prefix)
        csrf.exempt(module.blp)  # the API authenticates with bearer tokens, not cookies
