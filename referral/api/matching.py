"""Therapist + prescriber pairs for a patient."""

from __future__ import annotations

from flask import current_app

from ..queries import pairs
from ..schemas.matching import MatchAnswerSchema, MatchQuerySchema
from ..security import limit_searches
from . import Blueprint

blp = Blueprint("match", __name__, description="Matched therapist + prescriber pairs.")
blp.url_prefix = "/match"

@blp.route("", methods=["GET"])
@limit_searches
@blp.arguments(MatchQuerySchema, location="query")
@blp.response(200, MatchAnswerSchema)
def match(params):
    """Pairs of a therapist and a prescriber who both accept coordinated care and can
    both see the patient, ranked, each with the reasons in plain words."""
    answer = pairs(params)
    return current_app.json.response(answer)
