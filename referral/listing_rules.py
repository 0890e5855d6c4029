"""The rules of a listing, as plain functions of canonical values (no database, no HTTP).

The input schema applies them to a complete listing (create, bulk) and the
listing operations to the merged listing of a partial update, so both apply
exactly the same rules.
"""

from __future__ import annotations

import datetime as dt

from .geo import lookup_zip
from .models import utcnow
from .taxonomy import EXCLUDED_CODES, provider_type_for_code, role_for_codes
from .vocab import PROVIDER_TYPES


def role_for_provider_type(provider_type: str) -> str:
    """The role (therapist or prescriber) of a provider type."""
    return PROVIDER_TYPES[provider_type]


def is_stale(last_verified_at: dt.datetime | None, stale_after_days: int,
             now: dt.datetime | None = None) -> bool:
    """True when a listing was never verified or not within ``stale_after_days``."""
    if last_verified_at is None:
        return True
    return (now or utcnow()) - last_verified_at > dt.timedelta(days=stale_after_days)


def verification(last_verified_at, clinic: dict | None, stale: bool, reported: bool) -> dict:
    """A listing's freshness as every API answer gives it (``verification``): when its
    clinic last attested it (``at``), which clinic (``by``), whether that is longer ago
    than the stale period (``stale``) and whether patients' reports mark it
    (``reported``). Search and matching pass the index's ``stale`` and ``reported``; one
    loaded listing passes ``is_stale`` and its ``reported_at``."""
    return {"at": last_verified_at, "by": (clinic or {}).get("name"), "stale": bool(stale),
            "reported": bool(reported)}


def listing_problems(values: dict) -> dict[str, list[str]]:
    """Rules that involve several fields of a complete listing; ``{field: [message]}``.

    ``values`` holds canonical values (as loaded by ``ListingSchema``); absent keys
    are treated as not given.
    """
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    provider_type = values.get("provider_type")
    type_role = PROVIDER_TYPES.get(provider_type) if provider_type else None
    role = values.get("role") or type_role
    if values.get("role") and type_role and values["role"] != type_role:
        add("role", f"A {provider_type.replace('_', ' ')} is a {type_role}, "
                    f"not a {values['role']}.")

    state = values.get("state")
    licensed = list(values.get("licensed_states") or ([state] if state else []))
    codes = values.get("taxonomy_codes") or []
    for code in codes:
        if code in EXCLUDED_CODES:
            add("taxonomy_codes",
                f"{code} ({EXCLUDED_CODES[code]}) is not listed in this directory.")
        elif provider_type_for_code(code, licensed) is None:
            add("taxonomy_codes",
                f"{code} is not a behavioral-health therapist or prescriber code.")
    code_role = role_for_codes(codes, licensed)
    if code_role and role and code_role != role:
        add("taxonomy_codes",
            f"These taxonomy codes make the provider a {code_role}, but the listing says {role}.")

    fee_min, fee_max = values.get("fee_min"), values.get("fee_max")
    if (fee_min is None) != (fee_max is None):
        add("fee_max" if fee_max is None else "fee_min",
            "Give both the lowest and the highest fee, or neither.")
    elif fee_min is not None and fee_min > fee_max:
        add("fee_min", "The lowest fee must not be more than the highest fee.")

    if (values.get("latitude") is None) != (values.get("longitude") is None):
        add("latitude", "Give both latitude and longitude, or neither.")

    telehealth, in_person = values.get("telehealth", False), values.get("in_person", True)
    if not telehealth and not in_person:
        add("in_person", "A listing offers in-person care, telehealth, or both.")
    if in_person:
        for field in ("address_line1", "zip", "state"):
            if not values.get(field):
                add(field, "Required for in-person care.")
    zip_code = values.get("zip")
    if zip_code and state:
        place = lookup_zip(zip_code)
        if place is not None and place.state != state:
            add("zip", f"ZIP code {zip_code} is in {place.state}, not {state}.")
    if zip_code and not state:
        add("state", "Give the state of the practice ZIP code.")
    if telehealth and not licensed:
        add("licensed_states", "Telehealth needs the states where the provider is licensed.")
    if in_person and state and values.get("licensed_states") and state not in licensed:
        add("licensed_states", f"An in-person practice in {state} must be licensed in {state}.")
    return problems
