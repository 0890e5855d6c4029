"""NUCC taxonomy codes of behavioral-health providers (docs/domain.md section 4).

Plain functions that say what role a set of taxonomy codes gives a provider,
shared by listing validation and the NPPES importer.
"""

from __future__ import annotations

import re

TAXONOMY_CODE_RE = re.compile(r"^[0-9]{3}[0-9A-Z]{6}X$")

#: States where psychologists with the prescribing certification may prescribe.
RXP_STATES = frozenset({"NM", "LA", "IL", "IA", "ID", "CO", "UT"})

PRESCRIBING_PSYCHOLOGIST = "103TP0016X"

THERAPIST_CODES: dict[str, str] = {
    "103T00000X": "psychologist",
    "103G00000X": "psychologist",
    "1041C0700X": "clinical_social_worker",
    "101Y00000X": "counselor",
    "101YM0800X": "counselor",
    "101YP2500X": "counselor",
    "101YA0400X": "counselor",
    "106H00000X": "marriage_family_therapist",
    "102L00000X": "psychoanalyst",
    "103K00000X": "behavior_analyst",
}

PRESCRIBER_CODES: dict[str, str] = {
    "2084P0800X": "psychiatrist",
    "2084P0804X": "psychiatrist",
    "2084P0802X": "psychiatrist",
    "2084P0805X": "psychiatrist",
    "2084F0202X": "psychiatrist",
    "2084P0015X": "psychiatrist",
    "2084B0040X": "psychiatrist",
    "2084A0401X": "psychiatrist",
    "207QA0401X": "addiction_medicine",
    "207RA0401X": "addiction_medicine",
    "2083A0300X": "addiction_medicine",
    "207Q00000X": "primary_care",
    "207R00000X": "primary_care",
    "208D00000X": "primary_care",
    "363LP0808X": "psychiatric_np",
    "363A00000X": "physician_assistant",
    "363AM0700X": "physician_assistant",
}

#: Codes that look behavioral but are not directory providers.
EXCLUDED_CODES: dict[str, str] = {
    "163WP0808X": "psychiatric registered nurse (neither prescriber nor therapist)",
    "103TS0200X": "school psychologist",
    "101YS0200X": "school counselor",
    "101YP1600X": "pastoral counselor",
    "1041S0200X": "school social worker",
    "106S00000X": "behavior technician",
}


def provider_type_for_code(code: str, licensed_states=()) -> tuple[str, str] | None:
    """Return ``(role, provider_type)`` for one taxonomy code, or None if it is not ours.

    103TP0016X (prescribing psychologist) is a prescriber only when licensed in
    an RxP state; elsewhere the same person is a psychologist (therapist).
    """
    if code in EXCLUDED_CODES:
        return None
    if code == PRESCRIBING_PSYCHOLOGIST:
        if RXP_STATES.intersection(licensed_states):
            return "prescriber", "prescribing_psychologist"
        return "therapist", "psychologist"
    if code in PRESCRIBER_CODES:
        return "prescriber", PRESCRIBER_CODES[code]
    if code.startswith("363L"):
        return "prescriber", "nurse_practitioner"
    if code in THERAPIST_CODES:
        return "therapist", THERAPIST_CODES[code]
    if code.startswith("103T"):
        return "therapist", "psychologist"
    return None


def role_for_codes(codes, licensed_states=()) -> str | None:
    """Role given by a set of taxonomy codes: prescriber beats therapist; None if neither."""
    return role_for_types(provider_type_for_code(code, licensed_states) for code in codes)


def role_for_types(found) -> str | None:
    """Role given by the ``provider_type_for_code`` answers of a set of codes (None for a
    code that is not ours): prescriber beats therapist; None if neither."""
    roles = {each[0] for each in found if each is not None}
    if "prescriber" in roles:
        return "prescriber"
    if "therapist" in roles:
        return "therapist"
    return None
