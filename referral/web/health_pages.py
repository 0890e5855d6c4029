"""Directory health pages: the operators' figures (``/operator/health``) with the chart of
verification age, and the public promise to patients (``/about/accuracy``), both from
``referral.health`` (computed by the database)."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, current_app, render_template, request

from .. import health
from ..health_chart import bucket_label, chart_title, verification_age_svg
from ..schemas.paging import PageQuerySchema
from . import load_form
from .operator import operator_only

bp = Blueprint("health", __name__)
_page_schema = PageQuerySchema()


@bp.get("/operator/health")
@operator_only
def operator_health():
    """The directory's health overall, by state and by clinic (a page of clinics, the
    least verified first)."""
    params, _, errors = load_form(request.args, _page_schema)
    if params is None:
        params = _page_schema.load({})
    figures = health.directory_health(params["page"], params["per_page"])
    ages = figures["verification_age"]
    return render_template("operator/health.html", health=figures, errors=errors,
                           chart_title=chart_title(ages), bucket_label=bucket_label,
                           ), 422 if errors else 200


@bp.get("/operator/health/verification-age.svg")
@operator_only
def verification_age_chart():
    """The chart of verification age (SVG)."""
    svg = verification_age_svg(health.verification_age(),
                               current_app.config["STALE_AFTER_DAYS"])
    return Response(svg, mimetype="image/svg+xml")


#: The public page's figures are computed at most this often per process: anyone may open
#: it, and at a million listings the figures cost the database about a second.
PUBLIC_FIGURES_SECONDS = 300
_public_lock = threading.Lock()


@bp.get("/about/accuracy")
def accuracy():
    """How current the directory is, in plain words, for patients (figures at most
    ``PUBLIC_FIGURES_SECONDS`` old)."""
    with _public_lock:
        kept = current_app.extensions.get("accuracy_figures")
        if kept is None or time.monotonic() - kept[0] > PUBLIC_FIGURES_SECONDS:
            moment = health.Moment.current()
            kept = (time.monotonic(), moment, health.overall(moment))
            current_app.extensions["accuracy_figures"] = kept
    _, moment, figures = kept
    return render_template("about_accuracy.html", figures=figures, moment=moment,
                           window=health.REFERRAL_WINDOW_DAYS)
