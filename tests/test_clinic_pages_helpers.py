"""A complete clinic profile as the edit form posts it (journeys)."""

from __future__ import annotations

from referral.schemas.listings import FORM_FIELDS

PROFILE = {
    "first_name": "Maya", "last_name": "Okafor", "credentials": "LICSW",
    "provider_type": "clinical_social_worker", "modalities": ["CBT", "DBT"],
    "concerns": ["depression", "anxiety"], "age_groups": ["adult"], "languages": ["en"],
    "telehealth": True, "in_person": True, "licensed_states": ["MA"],
    "address_line1": "200 Longwood Ave", "state": "MA", "zip": "02115", "fee_min": 90,
    "fee_max": 150, "sliding_scale": True, "insurance": ["aetna"],
    "accepting_new_patients": True, "accepts_coordinated_care": True, "wait_days": 7,
}


def form_for(clinic_values: bool = True, **overrides) -> dict:
    """The edit form's fields for ``PROFILE`` (with overrides), as a browser posts them."""
    values = {**PROFILE, **overrides} if clinic_values else dict(overrides)
    form: dict = {}
    for field in FORM_FIELDS:
        name, value = field["name"], values.get(field["name"])
        if value is None or value is False:
            continue
        if value is True:
            form[name] = "true"
        elif isinstance(value, list):
            form[name] = ", ".join(value) if field["widget"] == "text_list" else value
        else:
            form[name] = str(value)
    return form
