"""Plan-Net resources built from listings and clinics (plain dicts, FHIR R4 JSON).

One public listing (a ``Provider`` row) is four resources with the listing's id:
``Practitioner`` (the person: NPI, name, credentials and licences, languages,
gender), ``PractitionerRole`` (the listing at its clinic: role, NUCC specialty,
contact, new patients, typical wait), ``HealthcareService`` (what the listing
offers: modalities, concerns, age groups, in person and/or telehealth, insurance,
fees, coordinated care) and, when it offers in-person care, ``Location`` (the
practice address with its coordinates). A clinic is an ``Organization`` with the
clinic's id; its addresses are the practice addresses of its public listings.
Telehealth is a virtual delivery method of the HealthcareService, never a
Location. ``meta.lastUpdated`` is the listing's ``updated_at``; the verification
date and stale flag are in our ``listing-verification`` extension.
"""

from __future__ import annotations

import datetime as dt

from ..models import Clinic, Provider
from ..vocab import LANGUAGES, PAYERS, PROVIDER_TYPES, STATES, gender_category
from . import terms
from .terms import coding, our_coding, our_url
from .visibility import Snapshot, has_location, is_stale

GENDERS = {"female": "female", "male": "male", "non-binary": "other"}
NPI_TYPE = {"coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0203", "NPI",
                              "National provider identifier")]}


def instant(value: dt.datetime) -> str:
    """A FHIR instant in UTC with microseconds (exact, so ``_lastUpdated=eq...`` round-trips)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def phone_text(digits: str) -> str:
    """``6175550123`` -> ``617-555-0123`` (other shapes unchanged)."""
    if len(digits) == 10 and digits.isdigit():
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return digits


def credential_list(credentials: str | None) -> list[str]:
    """``"APRN, PMHNP"`` -> ``["APRN", "PMHNP"]``."""
    return [part.strip() for part in (credentials or "").split(",") if part.strip()]


def person_name(provider: Provider) -> str:
    """``Maya Okafor, LCSW``: the HumanName text and the display of references to the person."""
    name = f"{provider.first_name} {provider.last_name}"
    return f"{name}, {provider.credentials}" if provider.credentials else name


def service_name(provider: Provider) -> str:
    """``Psychotherapy with Maya Okafor``: the HealthcareService name."""
    return f"{terms.SERVICE_NAMES[provider.role]} with {provider.first_name} {provider.last_name}"


def location_name(provider: Provider) -> str:
    """``Harbor Counseling, 200 Longwood Ave``: the Location name."""
    place = provider.address_line1 or provider.city or provider.zip
    return f"{provider.clinic.name}, {place}" if provider.clinic else place


def type_label(provider_type: str) -> str:
    """``clinical_social_worker`` -> ``Clinical social worker``."""
    return provider_type.replace("_", " ").capitalize()


def meta(resource_type: str, last_updated: dt.datetime) -> dict:
    """``meta`` with the Plan-Net profile and the last update."""
    return {"lastUpdated": instant(last_updated), "profile": [terms.PROFILES[resource_type]]}


def reference(resource_type: str, resource_id: int, display: str | None = None) -> dict:
    """A relative reference ``Type/id`` with an optional display."""
    found = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        found["display"] = display
    return found


def verification_extension(provider: Provider, snapshot: Snapshot) -> dict:
    """Our ``listing-verification`` extension: when the clinic last attested the listing,
    whether that is longer ago than ``STALE_AFTER_DAYS``, and whether patients' reports
    mark it (``referral.reports``)."""
    parts = [{"url": "stale", "valueBoolean": is_stale(provider, snapshot)},
             {"url": "reported", "valueBoolean": provider.reported_at is not None}]
    if provider.last_verified_at is not None:
        parts.insert(0, {"url": "lastVerified",
                         "valueDateTime": instant(provider.last_verified_at)})
    return {"url": our_url("StructureDefinition", "listing-verification"), "extension": parts}


def new_patients_extension(accepting: bool) -> dict:
    """Plan-Net ``newpatients``: accepting (``newpt``) or not (``nopt``)."""
    code = ("newpt", "Accepting") if accepting else ("nopt", "Not Accepting")
    return {"url": terms.EXT_NEW_PATIENTS, "extension": [{
        "url": "acceptingPatients",
        "valueCodeableConcept": {"coding": [coding(terms.ACCEPTING_PATIENTS_SYSTEM, *code)]}}]}


def typical_wait_extension(wait_days: int) -> dict:
    """Our ``typical-wait`` extension: days to a first appointment, as a UCUM duration."""
    return {"url": our_url("StructureDefinition", "typical-wait"),
            "valueDuration": {"value": wait_days, "unit": "days", "system": terms.UCUM_SYSTEM,
                              "code": "d"}}


def telecoms(provider_or_clinic, *, website: bool = True) -> list[dict]:
    """Phone, email and (for listings) website as ContactPoints."""
    found = []
    if provider_or_clinic.phone:
        found.append({"system": "phone", "value": phone_text(provider_or_clinic.phone),
                      "use": "work"})
    if provider_or_clinic.email:
        found.append({"system": "email", "value": provider_or_clinic.email, "use": "work"})
    if website and getattr(provider_or_clinic, "website", None):
        found.append({"system": "url", "value": provider_or_clinic.website, "use": "work"})
    return found


def geolocation_extension(latitude: float, longitude: float) -> dict:
    """The core ``geolocation`` extension of an Address."""
    return {"url": terms.EXT_GEOLOCATION, "extension": [
        {"url": "latitude", "valueDecimal": latitude},
        {"url": "longitude", "valueDecimal": longitude}]}


def practice_address(line1, line2, city, state, zip_code, latitude, longitude) -> dict:
    """A physical work Address (with ``geolocation`` when coordinates are known)."""
    address: dict = {}
    if latitude is not None and longitude is not None:
        address["extension"] = [geolocation_extension(latitude, longitude)]
    address.update({"use": "work", "type": "physical"})
    lines = [line for line in (line1, line2) if line]
    if lines:
        address["line"] = lines
    if city:
        address["city"] = city
    if state:
        address["state"] = state
    if zip_code:
        address["postalCode"] = zip_code
    address["country"] = "US"
    return address


def specialties(provider: Provider) -> list[dict]:
    """NUCC taxonomy codes as ``specialty`` concepts."""
    return [{"coding": [coding(terms.NUCC_SYSTEM, code)],
             "text": type_label(provider.provider_type)} for code in provider.taxonomy_codes]


def languages(provider: Provider) -> list[dict]:
    """Languages as BCP-47 concepts."""
    return [{"coding": [coding(terms.BCP47_SYSTEM, code, LANGUAGES.get(code))],
             "text": LANGUAGES.get(code, code)} for code in provider.languages]


# ---------------------------------------------------------------------------
# Resources of a listing


def practitioner(provider: Provider, snapshot: Snapshot) -> dict:
    """The person of a listing (Plan-Net Practitioner)."""
    name = {"use": "official", "text": person_name(provider), "family": provider.last_name,
            "given": [provider.first_name]}
    suffixes = credential_list(provider.credentials)
    if suffixes:
        name["suffix"] = suffixes
    resource = {
        "resourceType": "Practitioner", "id": str(provider.id),
        "meta": meta("Practitioner", provider.updated_at),
        "extension": [verification_extension(provider, snapshot)],
        "identifier": [{"use": "official", "type": NPI_TYPE, "system": terms.NPI_SYSTEM,
                        "value": provider.npi}],
        "active": True,
        "name": [name],
    }
    gender = GENDERS.get(gender_category(provider.gender))
    if gender:
        resource["gender"] = gender
    qualifications = [_credential(credential) for credential in suffixes]
    qualifications += [_licence(provider, code) for code in provider.taxonomy_codes]
    if qualifications:
        resource["qualification"] = qualifications
    if provider.languages:
        resource["communication"] = languages(provider)
    return resource


def _credential(credential: str) -> dict:
    degree = terms.DEGREE_CODES.get(credential.upper().replace("-", "").replace(".", ""))
    code: dict = {"text": credential}
    if degree:
        code = {"coding": [coding(terms.V2_DEGREE_SYSTEM, *degree)], "text": credential}
    return {"code": code}


def _licence(provider: Provider, taxonomy_code: str) -> dict:
    where = [{"url": "whereValid", "valueCodeableConcept": {
        "coding": [coding(terms.USPS_SYSTEM, state, STATES.get(state))]}}
        for state in provider.licensed_states]
    return {
        "extension": [{"url": terms.EXT_PRACTITIONER_QUALIFICATION, "extension": [
            {"url": "status", "valueCode": "active"}, *where]}],
        "code": {"coding": [coding(terms.NUCC_SYSTEM, taxonomy_code)],
                 "text": type_label(provider.provider_type)},
    }


def role_code(provider: Provider) -> dict:
    """``PractitionerRole.code``: Plan-Net's provider role plus ours (therapist/prescriber)."""
    plan_net = terms.PROVIDER_ROLE_CODES[provider.provider_type]
    return {"coding": [coding(terms.PROVIDER_ROLE_SYSTEM, *plan_net),
                       our_coding("listing-role", provider.role)],
            "text": terms.ROLE_LABELS[provider.role]}


def practitioner_role(provider: Provider, snapshot: Snapshot) -> dict:
    """The listing at its clinic (Plan-Net PractitionerRole)."""
    extensions = [new_patients_extension(provider.accepting_new_patients),
                  verification_extension(provider, snapshot)]
    if provider.wait_days is not None:
        extensions.append(typical_wait_extension(provider.wait_days))
    resource = {
        "resourceType": "PractitionerRole", "id": str(provider.id),
        "meta": meta("PractitionerRole", provider.updated_at),
        "extension": extensions,
        "active": True,
        "practitioner": reference("Practitioner", provider.id, person_name(provider)),
        "organization": reference("Organization", provider.clinic_id,
                                  provider.clinic.name if provider.clinic else None),
        "code": [role_code(provider)],
    }
    if provider.taxonomy_codes:
        resource["specialty"] = specialties(provider)
    if has_location(provider):
        resource["location"] = [reference("Location", provider.id, location_name(provider))]
    resource["healthcareService"] = [reference("HealthcareService", provider.id,
                                               service_name(provider))]
    contact = telecoms(provider)
    if contact:
        resource["telecom"] = contact
    if provider.wait_days is not None:
        resource["availabilityExceptions"] = (
            f"Typical wait for a first appointment: {provider.wait_days} days.")
    return resource


def location(provider: Provider, snapshot: Snapshot) -> dict:
    """The practice address of an in-person listing (Plan-Net Location)."""
    resource = {
        "resourceType": "Location", "id": str(provider.id),
        "meta": meta("Location", provider.updated_at),
        "extension": [new_patients_extension(provider.accepting_new_patients),
                      verification_extension(provider, snapshot)],
        "status": "active",
        "name": location_name(provider),
        "type": [{"coding": [coding(terms.V3_ROLE_CODE_SYSTEM, *terms.LOCATION_TYPE)]}],
    }
    contact = telecoms(provider, website=False)
    if contact:
        resource["telecom"] = contact
    resource["address"] = practice_address(
        provider.address_line1, provider.address_line2, provider.city, provider.state,
        provider.zip, provider.latitude, provider.longitude)
    if provider.latitude is not None and provider.longitude is not None:
        resource["position"] = {"longitude": provider.longitude, "latitude": provider.latitude}
    resource["managingOrganization"] = reference(
        "Organization", provider.clinic_id, provider.clinic.name if provider.clinic else None)
    return resource


def _delivery(kind: str, display: str) -> dict:
    return {"url": terms.EXT_DELIVERY_METHOD, "extension": [
        {"url": "type", "valueCodeableConcept": {
            "coding": [coding(terms.DELIVERY_METHOD_SYSTEM, kind, display)]}}]}


def healthcare_service(provider: Provider, snapshot: Snapshot) -> dict:
    """What a listing offers (Plan-Net HealthcareService)."""
    extensions = [new_patients_extension(provider.accepting_new_patients)]
    if provider.in_person:
        extensions.append(_delivery("physical", "Physical"))
    if provider.telehealth:
        extensions.append(_delivery("virtual", "Virtual"))
    extensions.append(verification_extension(provider, snapshot))
    extensions.append({"url": our_url("StructureDefinition", "accepts-coordinated-care"),
                       "valueBoolean": bool(provider.accepts_coordinated_care)})
    for payer in provider.insurance:
        extensions.append({"url": our_url("StructureDefinition", "accepted-insurance"),
                           "valueCodeableConcept": {"coding": [our_coding("payer", payer)],
                                                    "text": PAYERS[payer][0]}})
    if provider.fee_min is not None or provider.sliding_scale:
        fees = []
        if provider.fee_min is not None:
            fees.append({"url": "minimum", "valueMoney": {"value": provider.fee_min,
                                                          "currency": "USD"}})
        if provider.fee_max is not None:
            fees.append({"url": "maximum", "valueMoney": {"value": provider.fee_max,
                                                          "currency": "USD"}})
        fees.append({"url": "slidingScale", "valueBoolean": bool(provider.sliding_scale)})
        extensions.append({"url": our_url("StructureDefinition", "fees"), "extension": fees})
    if provider.wait_days is not None:
        extensions.append(typical_wait_extension(provider.wait_days))
    resource = {
        "resourceType": "HealthcareService", "id": str(provider.id),
        "meta": meta("HealthcareService", provider.updated_at),
        "extension": extensions,
        "active": True,
        "providedBy": reference("Organization", provider.clinic_id,
                                provider.clinic.name if provider.clinic else None),
        "category": [{"coding": [coding(terms.SERVICE_CATEGORY_SYSTEM,
                                        *terms.SERVICE_CATEGORY)]}],
    }
    if provider.modalities:
        resource["type"] = [{"coding": [our_coding("modality", modality)], "text": modality}
                            for modality in provider.modalities]
    if provider.taxonomy_codes:
        resource["specialty"] = specialties(provider)
    if has_location(provider):
        resource["location"] = [reference("Location", provider.id, location_name(provider))]
    resource["name"] = service_name(provider)
    if provider.bio:
        resource["comment"] = provider.bio
    contact = telecoms(provider)
    if contact:
        resource["telecom"] = contact
    if provider.age_groups:
        resource["eligibility"] = [
            {"code": {"coding": [our_coding("age-group", group)],
                      "text": terms.AGE_GROUP_LABELS[group]},
             "comment": f"Sees {terms.AGE_GROUP_LABELS[group].lower()}."}
            for group in provider.age_groups]
    if provider.concerns:
        resource["characteristic"] = [{"coding": [our_coding("concern", concern)]}
                                      for concern in provider.concerns]
    if provider.languages:
        resource["communication"] = languages(provider)
    return resource


# ---------------------------------------------------------------------------
# Organizations


def organization(clinic: Clinic, addresses: list[dict], last_updated: dt.datetime) -> dict:
    """A clinic (Plan-Net Organization); ``addresses`` are its public practice addresses.

    Plan-Net requires an address: a clinic without a public in-person listing (e.g. an
    unclaimed registry organization) has one whose absence is marked ``unknown``.
    """
    identifiers = []
    if clinic.organization_npi:
        identifiers.append({"use": "official", "type": NPI_TYPE, "system": terms.NPI_SYSTEM,
                            "value": clinic.organization_npi})
    identifiers.append({"use": "secondary", "system": terms.clinic_id_system(),
                        "value": str(clinic.id)})
    resource = {
        "resourceType": "Organization", "id": str(clinic.id),
        "meta": meta("Organization", last_updated),
        "identifier": identifiers,
        "active": True,
        "type": [{"coding": [coding(terms.ORG_TYPE_SYSTEM, *terms.ORGANIZATION_TYPE)]}],
        "name": clinic.name,
    }
    contact = telecoms(clinic, website=False)
    if contact:
        resource["telecom"] = contact
    resource["address"] = addresses or [{"extension": [{
        "url": terms.EXT_DATA_ABSENT, "valueCode": "unknown"}]}]
    return resource


#: Which builder makes each resource type of a listing.
LISTING_BUILDERS = {"Practitioner": practitioner, "PractitionerRole": practitioner_role,
                    "Location": location, "HealthcareService": healthcare_service}

assert set(terms.PROVIDER_ROLE_CODES) == set(PROVIDER_TYPES)
