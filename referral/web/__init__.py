"""Server-rendered pages for patients and clinics (Jinja, no external assets).

Pages call the same plain functions as the API and validate forms with the same
schemas; invalid form values re-render the form with the messages. Core search
works without JavaScript.
"""

from __future__ import annotations

import collections
import functools
import re
from urllib.parse import urlencode

from flask import Flask, current_app, url_for
from marshmallow import ValidationError

from ..crisis import CRISIS_MESSAGE
from ..i18n import N_, chosen_lang, gettext
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
from ..wording import (
    REPORTED_BADGE,
    REPORTED_NOTICE,
    fee_text,
    hidden_notice,
    reach_badges,
    verified_text,
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
    """``(loaded or None, raw values, field errors in plain words)`` of a form."""
    raw = form_values(args, schema)
    try:
        return schema.load(raw), raw, {}
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_": error.messages}
        return None, raw, plain_errors(messages, raw)


#: Form fields of the patient pages in plain words (listing fields: ``listing_label``).
FIELD_LABELS = {
    "q": N_("Search words"), "zip": N_("ZIP code"), "radius_miles": N_("Distance"),
    "concern": N_("Concern"), "modality": N_("Approach"), "insurance": N_("Insurance"),
    "language": N_("Language"), "age_group": N_("Age group"), "gender": N_("Provider's gender"),
    "role": N_("Therapist or prescriber"), "specialty": N_("Service or specialty"),
    "max_fee": N_("Most you can pay per session"),
    "max_combined_fee": N_("Most you can pay for both visits"), "sort": N_("Sort"),
    "page": N_("Page"), "state": N_("State"), "telehealth": N_("Telehealth"),
    "in_person": N_("In person"), "prescriber_type": N_("Prescriber type"),
    "per_page": N_("Results per page"),
    "reason": N_("What is wrong"), "text": N_("What you found"), "note": N_("Note"),
    "resolution": N_("How it was resolved"),
}
_UNKNOWN = re.compile(r"^Unknown (\w+) '(.*)'; use one of")
#: marshmallow's own messages that patient forms can show, as patterns -> plain words.
_LIBRARY_MESSAGES = (
    (re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"),
     N_("Enter a number from %(low)s to %(high)s.")),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), N_("Use at most %(low)s characters.")),
    (re.compile(r"^Not a valid boolean\.$"), N_("Choose yes or no.")),
    (re.compile(r"^Must be one of: .*\.$"), N_("Choose one of the choices.")),
    (re.compile(r"^Unknown field\.$"), N_("This field is not part of the form.")),
)


def _plain_message(message: str) -> str:
    """A schema's message in the request's language (the schemas mark their own; the
    library's known ones get plain words)."""
    for pattern, words in _LIBRARY_MESSAGES:
        found = pattern.match(message)
        if found:
            low, high = (*found.groups(), None, None)[:2]
            return gettext(words, low=low, high=high)
    return gettext(message)


def _sentence(label: str, message: str, value=None) -> str:
    label = gettext(label)
    unknown = _UNKNOWN.match(message)
    if unknown:
        return gettext("%(field)s: \u201c%(value)s\u201d is not one of the choices.",
                       field=label, value=unknown.group(2))
    if value is not None:
        return gettext("%(field)s: \u201c%(value)s\u201d: %(message)s", field=label,
                       value=value, message=_plain_message(message))
    return gettext("%(field)s: %(message)s", field=label, message=_plain_message(message))


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


def search_url(values: dict, change: dict) -> str:
    """The search page's address for the form ``values`` with ``change`` applied
    (``form_change``); repeated fields (approaches, insurance) as repeated parameters."""
    pairs = [_query_pair(key, item) for key, value in form_change(values, change).items()
             for item in (value if isinstance(value, list) else [value])]
    return url_for("web.search") + "?" + "&".join(pairs)


@functools.lru_cache(maxsize=4096)
def _query_pair(key: str, value: str) -> str:
    # A results page links each chip, suggestion and facet: hundreds of pairs, few distinct.
    return urlencode({key: value})


def chosen_values(raw: dict, understood: dict) -> dict[str, set]:
    """The values a search form's choices show as selected: what the form asked for and
    what the words were understood to ask for (``{"language": {"es"}, ...}``)."""
    picked: dict[str, set] = collections.defaultdict(set)
    for source in (raw, understood):
        for name, value in source.items():
            picked[name].update(value if isinstance(value, list | tuple) else [value])
    return picked


def register_web(app: Flask) -> None:
    """Attach the pages, their template helpers and the site's static files."""
    from . import (
        clinic,
        health_pages,
        operator,
        public,
        referral_pages,
        reminder_pages,
        report_pages,
    )

    app.register_blueprint(public.bp)
    app.register_blueprint(clinic.bp)
    app.register_blueprint(referral_pages.bp)  # referrals, webhooks, outbox
    app.register_blueprint(operator.bp)
    app.register_blueprint(report_pages.bp)  # patients' reports: clinic and operator pages
    app.register_blueprint(reminder_pages.bp)  # the digests' one-click links
    app.register_blueprint(health_pages.bp)  # /operator/health, /about/accuracy
    app.jinja_env.filters["humanize"] = humanize
    app.jinja_env.globals["term_options"] = term_options
    app.jinja_env.globals["reach_badges"] = reach_badges
    app.jinja_env.globals["verified_text"] = verified_text
    app.jinja_env.globals["hidden_notice"] = hidden_notice
    app.jinja_env.globals["REPORTED_NOTICE"] = REPORTED_NOTICE
    app.jinja_env.globals["REPORTED_BADGE"] = REPORTED_BADGE
    app.jinja_env.globals["term_label"] = term_label
    app.jinja_env.globals["search_url"] = search_url
    app.jinja_env.globals["chosen_values"] = chosen_values
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
            "crisis_message": gettext(CRISIS_MESSAGE),
            "MODALITIES": MODALITIES, "AGE_GROUPS": AGE_GROUPS,
            "PAYERS": {k: v[0] for k, v in PAYERS.items()}, "PROVIDER_TYPES": PROVIDER_TYPES,
            "GENDERS": GENDERS, **translated_labels(chosen_lang()),
            "stale_after_days": current_app.config["STALE_AFTER_DAYS"],
        }


def translated_labels(lang: str) -> dict[str, dict[str, str]]:
    """The vocabularies' labels the pages list, in a language (English: the declared ones)."""
    labels = {"CONCERNS": CONCERN_LABELS, "LANGUAGES": LANGUAGES, "STATES": STATES,
              "SPECIALTIES": SPECIALTIES}
    if lang == "en":
        return labels
    return {name: {code: gettext(label) for code, label in table.items()}
            for name, table in labels.items()}
