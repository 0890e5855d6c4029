"""Patient pages: search, a provider's page, and therapist + prescriber pairs."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address

from .. import reports
from ..crisis import signals_crisis
from ..limits import MAX_SEARCH_RESULTS
from ..listings import public_provider
from ..queries import pairs, patient_search, prescriber_finder
from ..schemas.listings import ProviderSchema
from ..schemas.matching import MatchQuerySchema, PrescriberFinderQuerySchema
from ..schemas.reports import REASON_LABELS, ReportSchema
from ..schemas.search import SearchQuerySchema
from ..security import limit_reports, limit_searches
from ..wording import hidden_notice
from . import load_form

bp = Blueprint("web", __name__)

_search_schema = SearchQuerySchema()
_match_schema = MatchQuerySchema()


@bp.get("/")
@limit_searches
def search():
    """The search form and, once a field is filled, the results."""
    params, raw, errors = load_form(request.args, _search_schema)
    deep = raw.get("page", "").isdigit() and int(raw["page"]) > 1
    if set(errors) == {"page"} and deep:  # past the deepest page: the last (search clamps)
        args = request.args.copy()
        args.pop("page")
        params, raw, errors = load_form(args, _search_schema)
        if params is not None:
            params["page"] = MAX_SEARCH_RESULTS // params["per_page"]
    answer = None
    if params is not None and raw:
        answer = patient_search(params)
    crisis = signals_crisis(raw.get("q")) if raw else False
    status = 422 if errors else 200
    return render_template("search.html", raw=raw, errors=errors, answer=answer,
                           crisis=crisis, params=params or {}, shown_errors=SHOWN_ERRORS,
                           pages=pager_links(raw, answer)), status


#: Errors the search form shows next to their own field (the others above the button).
SHOWN_ERRORS = ("q", "zip", "radius_miles", "telehealth", "state", "in_person", "max_fee",
                "sort", "role", "concern", "modality", "specialty", "insurance", "language",
                "gender", "age_group")


def pager_links(values: dict, answer: dict | None) -> dict:
    """``{"previous", "next"}`` links of a results page (None when there is none).

    Built from the form's values only (``load_form`` keeps the schema's fields), never
    from the raw query string: parameters ``url_for`` reserves (``_external``,
    ``_anchor``, ``_method``, ``_scheme``) or needs (``endpoint``) would change the
    links or fail.
    """
    if not answer:
        return {"previous": None, "next": None}
    page = answer["page"]

    def link(number: int) -> str:
        return url_for("web.search") + "?" + urlencode({**values, "page": number}, doseq=True)

    return {"previous": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page * answer["per_page"] < answer["total"] else None}


@bp.get("/providers/<int(min=1, max=2147483647):provider_id>")
def provider(provider_id, report=None):
    """One listing in full with its freshness; a therapist's page shows prescribers who
    coordinate with them. A listing hidden from search (not verified within
    ``HIDDEN_AFTER_DAYS``) still has its page, with a notice saying why it is hidden: a
    patient with a saved link learns the listing may be out of date rather than that it
    never existed. ``report`` is the state of the report form after a POST with errors;
    ``?reported=1`` (where a filed report redirects) thanks the reporter."""
    listing = ProviderSchema().dump(public_provider(provider_id))
    if report is None and request.args.get("reported") == "1":
        report = {"thanks": True, "raw": {}, "errors": {}}
    prescribers = None
    if listing["role"] == "therapist" and (listing["zip"] or listing["state"]):
        near = {"zip": listing["zip"]} if listing["zip"] else {"patient_state": listing["state"]}
        params = PrescriberFinderQuerySchema().load({**near, "per_page": 5})
        prescribers = prescriber_finder(provider_id, params)["items"]
    hidden = hidden_notice(listing["verification"], current_app.config["HIDDEN_AFTER_DAYS"])
    return render_template("provider.html", p=listing, prescribers=prescribers,
                           hidden=hidden, report=report or {"raw": {}, "errors": {}},
                           reasons=REASON_LABELS)


_report_schema = ReportSchema()
#: The hidden form field people never see or fill, and bots that fill every field do.
HONEYPOT = "website"


@bp.post("/providers/<int(min=1, max=2147483647):provider_id>/report")
@limit_reports
def report_listing(provider_id):
    """File a patient's report from the provider page; the page again, thanking them (or
    with the errors beside the inputs, 422). A filled honeypot is thanked the same way and
    nothing is stored, so a bot learns nothing. A filed report redirects (303) to the page
    with the thanks, so reloading it does not send the report again."""
    public_provider(provider_id)
    thanked = redirect(url_for("web.provider", provider_id=provider_id, reported=1,
                               _anchor="report"), 303)
    if request.form.get(HONEYPOT, "").strip():
        return thanked
    values, raw, errors = load_form(request.form, _report_schema)
    if errors:
        return provider(provider_id, report={"raw": raw, "errors": errors}), 422
    reports.file_report(provider_id, values["reason"], values.get("text"),
                        get_remote_address())
    return thanked


@bp.get("/match")
@limit_searches
def match():
    """The needs form and therapist + prescriber pairs with their reasons."""
    params, raw, errors = load_form(request.args, _match_schema)
    if not raw:  # a first visit: the empty form, nothing to complain about yet
        params, errors = None, {}
    answer = None
    if params is not None and raw:
        answer = pairs(params)
    return render_template("match.html", raw=raw, errors=errors, answer=answer,
                           params=params or {}), 422 if errors else 200
