"""Server-rendered pages for patients and clinics (Jinja, no external assets).

Pages call the same plain functions as the API and validate forms with the same
schemas; invalid form values re-render the form with the messages. Core search
works without JavaScript.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app
from marshmallow import ValidationError

from ..crisis import CRISIS_MESSAGE
from ..schemas.listings import listing_label
from ..vocab import (
    AGE_GROUPS,
    CONCERN_LABELS,
    LANGUAGES,
    MODALITIES,
    PAYERS,
    PROVIDER_TYPES,
    STATES,
    VOCABULARIES,
)


def form_values(args, schema) -> dict:
    """Form fields as schema input: repeated fields as lists, empty fields dropped."""
    values = {}
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key not in args:
            continue
        if hasattr(field, "inner"):
            items = [v for v in args.getlist(key) if v.strip()]
            if items:
                values[key] = items
        else:
            value = args.get(key, "")
            if value.strip():
                values[key] = value
    return values


def load_form(args, schema) -> tuple[dict | None, dict, dict]:
    """``(loaded or None, raw values, field errors)`` of a form against a schema."""
    raw = form_values(args, schema)
    try:
        return schema.load(raw), raw, {}
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_": error.messages}
        return None, raw, messages


def days_ago(value: str | None) -> int | None:
    """Whole days since an ISO timestamp (None stays None)."""
    if not value:
        return None
    then = dt.datetime.fromisoformat(value)
    return max(0, (dt.datetime.now(dt.UTC) - then).days)


def humanize(value: str) -> str:
    """``older_adult`` -> ``Older adult``."""
    return value.replace("_", " ").capitalize()


def term_options(vocabulary: str) -> list[tuple[str, str]]:
    """``(value, label)`` of each value of a vocabulary, for a form's choices."""
    labels = {"modality": {m: m for m in MODALITIES}, "concern": CONCERN_LABELS,
              "language": LANGUAGES, "insurance": {k: v[0] for k, v in PAYERS.items()},
              "state": STATES}.get(vocabulary, {})
    return [(value, labels.get(value) or humanize(value))
            for value in VOCABULARIES[vocabulary].canonical]


def register_web(app: Flask) -> None:
    """Attach the pages, their template helpers and the site's static files."""
    from . import clinic, operator, public

    app.register_blueprint(public.bp)
    app.register_blueprint(clinic.bp)
    app.register_blueprint(operator.bp)
    app.jinja_env.filters["days_ago"] = days_ago
    app.jinja_env.filters["humanize"] = humanize
    app.jinja_env.globals["term_options"] = term_options
    app.jinja_env.filters["field_label"] = listing_label
    app.jinja_env.filters["zip_pairs"] = lambda values: [(v, v) for v in values]
    app.jinja_env.filters["zip_pairs_humanized"] = lambda values: [(v, humanize(v))
                                                                   for v in values]

    @app.context_processor
    def vocabulary():
        return {
            "crisis_message": CRISIS_MESSAGE,
            "MODALITIES": MODALITIES, "CONCERNS": CONCERN_LABELS, "AGE_GROUPS": AGE_GROUPS,
            "LANGUAGES": LANGUAGES, "PAYERS": {k: v[0] for k, v in PAYERS.items()},
            "PROVIDER_TYPES": PROVIDER_TYPES, "STATES": STATES,
            "stale_after_days": current_app.config["STALE_AFTER_DAYS"],
        }
