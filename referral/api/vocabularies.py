"""The controlled vocabularies, so clients can build forms and show labels."""

from __future__ import annotations

from marshmallow import Schema, fields

from ..vocab import (
    AGE_GROUPS,
    CONCERN_MODALITIES,
    LANGUAGES,
    MODALITIES,
    PAYERS,
    PROVIDER_TYPES,
    ROLES,
    STATES,
)
from . import Blueprint

blp = Blueprint("vocabularies", __name__, description="Controlled vocabularies.")
blp.url_prefix = "/vocabularies"


class VocabulariesSchema(Schema):
    """Each vocabulary as a list of {value, label}; concerns also name their modalities."""

    role = fields.List(fields.Dict())
    provider_type = fields.List(fields.Dict())
    modality = fields.List(fields.Dict())
    concern = fields.List(fields.Dict())
    age_group = fields.List(fields.Dict())
    language = fields.List(fields.Dict())
    insurance = fields.List(fields.Dict())
    state = fields.List(fields.Dict())


def _humanize(value: str) -> str:
    return value.replace("_", " ").capitalize()


@blp.route("", methods=["GET"])
@blp.response(200, VocabulariesSchema)
def vocabularies():
    """Every controlled vocabulary with labels (modalities with a plain-language note)."""
    return {
        "role": [{"value": r, "label": _humanize(r)} for r in ROLES],
        "provider_type": [{"value": t, "label": _humanize(t), "role": role}
                          for t, role in PROVIDER_TYPES.items()],
        "modality": [{"value": m, "label": note.split(":")[0], "description": note}
                     for m, note in MODALITIES.items()],
        "concern": [{"value": c, "label": _humanize(c), "modalities": list(mods)}
                    for c, mods in CONCERN_MODALITIES.items()],
        "age_group": [{"value": a, "label": _humanize(a)} for a in AGE_GROUPS],
        "language": [{"value": code, "label": name} for code, name in LANGUAGES.items()],
        "insurance": [{"value": slug, "label": display} for slug, (display, _) in PAYERS.items()],
        "state": [{"value": code, "label": name} for code, name in STATES.items()],
    }
