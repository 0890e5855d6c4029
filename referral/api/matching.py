"""Therapist + prescriber pairs for a patient."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..matching import match_pairs
from ..schemas.listings import listing_dump
from ..schemas.matching import MatchAnswerSchema, MatchQuerySchema
from ..search import freshness
from ..security import limit_searches
from ..services import search_service
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
    answer = match_pairs(search_service(), db.session, params,
                         listing_dump, **freshness(current_app.config))
    return current_app.json.response(answer)
