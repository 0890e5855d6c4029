"""Canonical URLs and code mappings of the FHIR Plan-Net API.

Plan-Net (HL7 Da Vinci PDex Plan-Net, FHIR R4) publishes the profiles, the
``newpatients``, ``delivery-method`` and ``practitioner-qualification``
extensions and the code systems used here. Plan-Net has no extension for a
listing's verification, coordinated care, fees, insurance or typical wait: those
are ours, under ``<FHIR_CANONICAL_BASE>/StructureDefinition/...``, and our
directory vocabularies (modalities, concerns, age groups, payers, listing roles)
are small CodeSystems of ours under ``<FHIR_CANONICAL_BASE>/CodeSystem/...``,
readable at ``/fhir/CodeSystem/<id>``.
"""

from __future__ import annotations

from flask import current_app

from ..vocab import AGE_GROUPS, CONCERN_LABELS, CONCERN_MODALITIES, MODALITIES, PAYERS, ROLES

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

#: Where our own canonical URLs live unless ``FHIR_CANONICAL_BASE`` is configured.
DEFAULT_CANONICAL_BASE = "https://mh-directory.example.org/fhir"

PLAN_NET = "http://hl7.org/fhir/us/davinci-pdex-plan-net"
PLAN_NET_IG = f"{PLAN_NET}/ImplementationGuide/hl7.fhir.us.davinci-pdex-plan-net"
PLAN_NET_CAPABILITY = f"{PLAN_NET}/CapabilityStatement/plan-net"

#: The Plan-Net profile each resource type we serve claims in ``meta.profile``.
PROFILES = {
    "Practitioner": f"{PLAN_NET}/StructureDefinition/plannet-Practitioner",
    "PractitionerRole": f"{PLAN_NET}/StructureDefinition/plannet-PractitionerRole",
    "Organization": f"{PLAN_NET}/StructureDefinition/plannet-Organization",
    "Location": f"{PLAN_NET}/StructureDefinition/plannet-Location",
    "HealthcareService": f"{PLAN_NET}/StructureDefinition/plannet-HealthcareService",
}

# Plan-Net extensions
EXT_NEW_PATIENTS = f"{PLAN_NET}/StructureDefinition/newpatients"
EXT_DELIVERY_METHOD = f"{PLAN_NET}/StructureDefinition/delivery-method"
EXT_PRACTITIONER_QUALIFICATION = f"{PLAN_NET}/StructureDefinition/practitioner-qualification"
# Core FHIR extensions
EXT_GEOLOCATION = "http://hl7.org/fhir/StructureDefinition/geolocation"
EXT_DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
EXT_LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"

# Code systems
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
USPS_SYSTEM = "https://www.usps.com/"
BCP47_SYSTEM = "urn:ietf:bcp:47"
UCUM_SYSTEM = "http://unitsofmeasure.org"
V2_DEGREE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0360"
V3_ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ACCEPTING_PATIENTS_SYSTEM = f"{PLAN_NET}/CodeSystem/AcceptingPatientsCS"
DELIVERY_METHOD_SYSTEM = f"{PLAN_NET}/CodeSystem/DeliveryMethodCS"
ORG_TYPE_SYSTEM = f"{PLAN_NET}/CodeSystem/OrgTypeCS"
PROVIDER_ROLE_SYSTEM = f"{PLAN_NET}/CodeSystem/ProviderRoleCS"
QUALIFICATION_STATUS_SYSTEM = f"{PLAN_NET}/CodeSystem/QualificationStatusCS"
SERVICE_CATEGORY_SYSTEM = f"{PLAN_NET}/CodeSystem/HealthcareServiceCategoryCS"

#: Every clinic is a provider group (Plan-Net OrgTypeCS).
ORGANIZATION_TYPE = ("prvgrp", "Provider Group")
#: Every service is behavioral health (Plan-Net HealthcareServiceCategoryCS).
SERVICE_CATEGORY = ("behav", "Behavioral Health")
#: Every practice location is an outpatient facility (HL7 v3 RoleCode).
LOCATION_TYPE = ("OF", "Outpatient facility")

#: Plan-Net ProviderRoleCS code for each provider type of the directory.
PROVIDER_ROLE_CODES: dict[str, tuple[str, str]] = {
    "psychologist": ("py", "Psychologist"),
    "prescribing_psychologist": ("py", "Psychologist"),
    "clinical_social_worker": ("sw", "Social Worker"),
    "counselor": ("co", "Counselor"),
    "marriage_family_therapist": ("mt", "Marriage/Family Therapist"),
    "psychoanalyst": ("bh", "Behavioral Health & Social Service Providers"),
    "behavior_analyst": ("ba", "Board Certified Behavior Analyst"),
    "psychiatrist": ("ph", "Physician"),
    "primary_care": ("ph", "Physician"),
    "addiction_medicine": ("ph", "Physician"),
    "psychiatric_np": ("apn", "Advanced Practice Nursing Providers"),
    "nurse_practitioner": ("apn", "Advanced Practice Nursing Providers"),
    "physician_assistant": ("pa", "Physician Assistant"),
}

#: Degrees of HL7 v2 table 0360 that credentials map to; other credentials are text only.
DEGREE_CODES: dict[str, tuple[str, str]] = {
    "MD": ("MD", "Doctor of Medicine"),
    "DO": ("DO", "Doctor of Osteopathy"),
    "PHD": ("PHD", "Doctor of Philosophy"),
    "PA": ("PA", "Physician Assistant"),
    "PAC": ("PA", "Physician Assistant"),
}

#: Patient-facing names of the services each role offers.
SERVICE_NAMES = {"therapist": "Psychotherapy", "prescriber": "Psychiatric medication management"}

AGE_GROUP_LABELS = {"child": "Children", "adolescent": "Adolescents", "adult": "Adults",
                    "older_adult": "Older adults"}
ROLE_LABELS = {"therapist": "Therapist (talk therapy)",
               "prescriber": "Prescriber (psychiatric medication)"}


def canonical_base() -> str:
    """Our canonical URL base (``FHIR_CANONICAL_BASE``, else the documented default)."""
    return current_app.config.get("FHIR_CANONICAL_BASE") or DEFAULT_CANONICAL_BASE


def our_url(kind: str, name: str) -> str:
    """The canonical URL of one of our definitions, e.g. ``our_url("CodeSystem", "modality")``."""
    return f"{canonical_base()}/{kind}/{name}"


def clinic_id_system() -> str:
    """Identifier system of our clinic ids (every Organization has one, NPI or not)."""
    return f"{canonical_base()}/sid/clinic-id"


# ---------------------------------------------------------------------------
# Our code systems


#: ``id -> (title, description, [(code, display, definition)])``, built from the vocabularies.
CODE_SYSTEMS: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "modality": (
        "Therapy modalities",
        "Psychotherapy approaches a listing offers (HealthcareService.type).",
        [(code, note.split(":")[0], note) for code, note in MODALITIES.items()]),
    "concern": (
        "Concerns treated",
        "Concerns a listing treats (HealthcareService.characteristic); a suggestion for "
        "patients, never a diagnosis.",
        [(code, CONCERN_LABELS[code],
          f"Treats {CONCERN_LABELS[code]}; evidence-informed modalities: "
          + ", ".join(CONCERN_MODALITIES[code]) + ".") for code in CONCERN_LABELS]),
    "age-group": (
        "Age groups served",
        "Whom a listing sees (HealthcareService.eligibility.code).",
        [(code, AGE_GROUP_LABELS[code], f"Sees {AGE_GROUP_LABELS[code].lower()}.")
         for code in AGE_GROUPS]),
    "payer": (
        "Insurance payers",
        "Normalized payer names a listing accepts (extension accepted-insurance).",
        [(slug, display, f"Accepts {display}.") for slug, (display, _) in PAYERS.items()]),
    "listing-role": (
        "Listing roles",
        "Whether a listing is a therapist or a prescriber (PractitionerRole.code).",
        [(role, ROLE_LABELS[role], ROLE_LABELS[role] + ".") for role in ROLES]),
}


def code_system_url(code_system_id: str) -> str:
    """Canonical URL of one of our code systems."""
    return our_url("CodeSystem", code_system_id)


def coding(system: str, code: str, display: str | None = None) -> dict:
    """A Coding (display only when known)."""
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def our_coding(code_system_id: str, code: str) -> dict:
    """A Coding of one of our code systems, with its display."""
    display = next((d for c, d, _ in CODE_SYSTEMS[code_system_id][2] if c == code), None)
    return coding(code_system_url(code_system_id), code, display)
