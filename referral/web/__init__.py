"""Server-rendered pages for patients and clinics (Jinja, no external assets).

Pages call the same plain functions as the API and validate forms with the same
schemas; invalid form values re-render the form with the messages. Core search
works without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask, current_app
from marshmallow import ValidationError

from ..crisis import CRISIS_MESSAGE
from ..schemas.listings import listing_label
from ..vocab import (
    AGE_GROUPS,
    CONCERN_LABELS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PAYERS,
    PROVIDER_TYPES,
    SPECIALTIES,
    STATES,
    VOCABULARIES,
    modality_name,
    modality_note,
    term_label,
)
from ..wording import fee_text, reach_badges


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
    """``(loaded or None, raw values, field errors in plain words)`` of a form."""
    raw = form_values(args, schema)
    try:
        return schema.load(raw), raw, {}
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_": error.messages}
        return None, raw, plain_errors(messages, raw)


#: Form fields of the patient pages in plain words (listing fields: ``listing_label``).
FIELD_LABELS = {
    "q": "Search words", "zip": "ZIP code", "radius_miles": "Distance", "concern": "Concern",
    "modality": "Approach", "insurance": "Insurance", "language": "Language",
    "age_group": "Age group", "gender": "Provider's gender", "role": "Therapist or prescriber",
    "specialty": "Service or specialty", "max_fee": "Most you can pay per session",
    "max_combined_fee": "Most you can pay for both visits", "sort": "Sort", "page": "Page",
    "state": "State", "telehealth": "Telehealth", "in_person": "In person",
    "prescriber_type": "Prescriber type", "per_page": "Results per page",
}
_UNKNOWN = re.compile(r"^Unknown (\w+) '(.*)'; use one of")


def _sentence(label: str, message: str, value=None) -> str:
    unknown = _UNKNOWN.match(message)
    if unknown:
        return f"{label}: \u201c{unknown.group(2)}\u201d is not one of the choices."
    if value is not None:
        return f"{label}: \u201c{value}\u201d: {message}"
    return f"{label}: {message}"


def plain_errors(messages: dict, raw: dict) -> dict[str, list[str]]:
    """Field errors as sentences a patient or clinic can act on: the field's name in plain
    words, and for a list field the value that was wrong (never its position)."""
    plain: dict[str, list[str]] = {}
    for name, found in messages.items():
        label = FIELD_LABELS.get(name) or listing_label(name)
        if isinstance(found, dict):  # a list field: {position: [messages]}
            values = raw.get(name)
            values = values if isinstance(values, list) else [values]
            sentences = []
            for position, inner in found.items():
                value = values[position] if isinstance(position, int) and \
                    position < len(values) else None
                sentences += [_sentence(label, text, value) for text in _texts(inner)]
            plain[name] = sentences
        else:
            plain[name] = [_sentence(label, text) for text in _texts(found)]
    return plain


def _texts(found) -> list[str]:
    if isinstance(found, str):
        return [found]
    if isinstance(found, dict):
        return [text for inner in found.values() for text in _texts(inner)]
    return [text for inner in found for text in _texts(inner)]


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
    labels = {"modality": {m: modality_name(m) for m in MODALITIES}, "concern": CONCERN_LABELS,
              "language": LANGUAGES, "insurance": {k: v[0] for k, v in PAYERS.items()},
              "state": STATES, "specialty": SPECIALTIES}.get(vocabulary, {})
    return [(value, labels.get(value) or humanize(value))
            for value in VOCABULARIES[vocabulary].canonical]


def form_change(values: dict, change: dict) -> dict:
    """Form values with a change applied (``None`` removes a field; ``True`` -> ``"true"``);
    paging starts over. Links built with it come from validated form values only."""
    changed = {key: value for key, value in values.items() if key != "page"}
    for key, value in change.items():
        if value is None:
            changed.pop(key, None)
        elif isinstance(value, bool):
            changed[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            changed[key] = [str(item) for item in value]
        else:
            changed[key] = str(value)
    return changed


def register_web(app: Flask) -> None:
    """Attach the pages, their template helpers and the site's static files."""
    from . import clinic, health_pages, operator, public, referral_pages, reminder_pages

    app.register_blueprint(public.bp)
    app.register_blueprint(clinic.bp)
    app.register_blueprint(referral_pages.bp)  # referrals, webhooks, outbox
    app.register_blueprint(operator.bp)
    app.register_blueprint(reminder_pages.bp)  # the digests' one-click links
    app.register_blueprint(health_pages.bp)  # /operator/health, /about/accuracy
    app.jinja_env.filters["days_ago"] = days_ago
    app.jinja_env.filters["humanize"] = humanize
    app.jinja_env.globals["term_options"] = term_options
    app.jinja_env.globals["reach_badges"] = reach_badges
    app.jinja_env.globals["term_label"] = term_label
    app.jinja_env.globals["form_change"] = form_change
    app.jinja_env.filters["fee_text"] = fee_text
    app.jinja_env.filters["modality_name"] = modality_name
    app.jinja_env.filters["modality_note"] = modality_note
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
            "PROVIDER_TYPES": PROVIDER_TYPES, "STATES": STATES, "SPECIALTIES": SPECIALTIES,
            "GENDERS": GENDERS,
            "stale_after_days": current_app.config["STALE_AFTER_DAYS"],
        }
