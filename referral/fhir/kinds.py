"""The resource types of the FHIR API: their search parameters as SQL, their references
(for chains, ``_include`` and ``_revinclude``) and how their resources are loaded.

Practitioner, PractitionerRole, HealthcareService and Location are views of the
same ``provider`` row (same id), so a reference between them, and a chain through
one (``PractitionerRole?location.address-postalcode=02115``), is a condition on
that row; a reference to an Organization is the row's ``clinic_id``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, case, false, func, or_, select, true, type_coerce
from sqlalchemy.orm import aliased, joinedload

from ..extensions import db
from ..models import Clinic, Provider, UTCDateTime
from ..vocab import PROVIDER_TYPES
from . import resources, terms
from .outcome import FhirError
from .params import Occurrence, parse_date, parse_reference, parse_token
from .sql import json_array_has, json_array_nonempty, string_matches, text_literal
from .visibility import Snapshot, has_location, is_public, listing_has_location, public_listing

RESOURCE_ID = re.compile(r"^\d{1,18}$")
CORE = "http://hl7.org/fhir/SearchParameter"
PLAN_NET_SP = f"{terms.PLAN_NET}/SearchParameter"


class UnknownParameter(Exception):
    """A parameter the resource type does not have (ignored unless handling is strict)."""


@dataclass
class Param:
    """One search parameter of a resource type."""

    name: str
    type: str  # string | token | reference | date | special
    definition: str
    documentation: str
    build: Callable[[Occurrence, Snapshot], object] | None = None
    modifiers: frozenset = frozenset()
    target: str | None = None  # reference parameters: the target resource type
    same_row: bool = False  # reference to a resource of the same listing row
    column: object = None  # reference parameters: the column holding the target id


@dataclass
class Kind:
    """A resource type we serve: its table, its visibility, parameters and references."""

    name: str
    model: type
    exists: Callable[[Snapshot], object]
    params: dict[str, Param] = field(default_factory=dict)

    def references(self) -> dict[str, Param]:
        """The reference parameters (usable in chains and ``_include``)."""
        return {name: p for name, p in self.params.items() if p.type == "reference"}


# ---------------------------------------------------------------------------
# Parameter builders


def _or(clauses):
    clauses = list(clauses)
    return or_(*clauses) if clauses else false()


def string_param(name: str, definition: str, documentation: str, columns: Callable) -> Param:
    """A string parameter matching any of ``columns()`` (starts-with, ``:contains``, ``:exact``)."""
    def build(occurrence: Occurrence, snapshot: Snapshot):
        return _or(string_matches(columns(snapshot), value.replace("\\|", "|"),
                                  occurrence.modifier) for value in occurrence.values())
    return Param(name, "string", definition, documentation, build,
                 frozenset({"exact", "contains"}))


def token_param(name: str, definition: str, documentation: str,
                sources: list[tuple[Callable[[], str], Callable]]) -> Param:
    """A token parameter over coded values; ``sources`` are ``(system(), match(code|None))``
    (``match(None)`` is "any code of this system")."""
    def build(occurrence: Occurrence, snapshot: Snapshot):
        clauses = []
        for value in occurrence.values():
            system, code = parse_token(value)
            if system is None:
                clauses += [match(code) for _, match in sources]
            elif system:
                clauses += [match(code or None) for source, match in sources
                            if source() == system]
        return _or(clauses)
    return Param(name, "token", definition, documentation, build)


def id_param(model) -> Param:
    """``_id``: the resource id."""
    def build(occurrence: Occurrence, snapshot: Snapshot):
        ids = [int(code) for _, code in map(parse_token, occurrence.values())
               if RESOURCE_ID.match(code)]
        return model.id.in_(ids) if ids else false()
    return Param("_id", "token", f"{CORE}/Resource-id", "The resource id.", build)


def date_condition(column, value: str):
    """One date value (with its prefix) against a timestamp column."""
    prefix, start, end = parse_date(value)
    return {"eq": lambda: and_(column >= start, column < end),
            "ne": lambda: or_(column < start, column >= end),
            "gt": lambda: column >= end, "sa": lambda: column >= end,
            "lt": lambda: column < start, "eb": lambda: column < start,
            "ge": lambda: column >= start, "le": lambda: column < end}[prefix]()


def last_updated_param(column: Callable, documentation: str) -> Param:
    """``_lastUpdated`` over a timestamp expression."""
    def build(occurrence: Occurrence, snapshot: Snapshot):
        return _or(date_condition(column(snapshot), value) for value in occurrence.values())
    return Param("_lastUpdated", "date", f"{CORE}/Resource-lastUpdated", documentation, build)


def reference_param(name: str, definition: str, documentation: str, target: str, *,
                    column=None, same_row: bool = False) -> Param:
    """A reference to ``target``: to the same listing row (``same_row``), or by ``column``."""
    def build(occurrence: Occurrence, snapshot: Snapshot):
        clauses = []
        for value in occurrence.values():
            kind, resource_id = parse_reference(value)
            if (kind and kind != target) or not RESOURCE_ID.match(resource_id):
                continue
            if same_row:
                clauses.append(and_(Provider.id == int(resource_id),
                                    KINDS[target].exists(snapshot)))
            elif column is not None:
                clauses.append(column == int(resource_id))
        return _or(clauses)
    return Param(name, "reference", definition, documentation, build, target=target,
                 same_row=same_row, column=column)


def chained(param: Param, inner, snapshot: Snapshot):
    """The condition of a chain through ``param`` whose target satisfies ``inner``."""
    target = KINDS[param.target]
    if param.same_row:
        return and_(target.exists(snapshot), inner)
    if param.column is None:
        return false()
    return param.column.in_(select(target.model.id).where(target.exists(snapshot), inner))


def condition(kind: Kind, occurrence: Occurrence, snapshot: Snapshot):
    """The SQL condition of one parameter occurrence on ``kind``'s rows.

    Raises ``UnknownParameter`` for a name (or chained name) the type does not have,
    and ``FhirError`` (400) for a modifier or chain it does not support.
    """
    param = kind.params.get(occurrence.name)
    if param is None:
        raise UnknownParameter(occurrence.key)
    modifier = occurrence.modifier
    if param.type == "reference" and modifier is not None and modifier[:1].isupper():
        if modifier != param.target:
            return false()  # a type this reference never points to
        modifier = None
    if occurrence.chain:
        if param.type != "reference":
            raise FhirError(400, f"{occurrence.name} is not a reference, so it cannot be "
                                 f"chained ({occurrence.key}).", expression=occurrence.key)
        if modifier is not None:
            raise FhirError(400, f"Modifier :{modifier} is not supported on a chain "
                                 f"({occurrence.key}).", code="not-supported",
                            expression=occurrence.key)
        target = KINDS[param.target]
        inner_param = target.params.get(occurrence.chain)
        if inner_param is None:
            raise UnknownParameter(occurrence.key)
        if inner_param.build is None:
            raise FhirError(400, f"{occurrence.key}: chaining to {target.name}."
                                 f"{occurrence.chain} is not supported.", code="not-supported",
                            expression=occurrence.key)
        return chained(param, condition(target, occurrence.unchained(), snapshot), snapshot)
    if modifier is not None and modifier not in param.modifiers:
        raise FhirError(400, f"Modifier :{modifier} is not supported on {kind.name}."
                             f"{param.name}.", code="not-supported", expression=occurrence.key)
    if param.build is None:
        raise FhirError(400, f"{param.name} cannot be used here.", code="not-supported",
                        expression=occurrence.key)
    return param.build(Occurrence(occurrence.key, occurrence.raw, occurrence.name, modifier),
                       snapshot)


# ---------------------------------------------------------------------------
# SQL expressions mirroring what the resources say


def person_text():
    """SQL twin of ``resources.person_name``."""
    return (Provider.first_name + text_literal(" ") + Provider.last_name
            + func.coalesce(text_literal(", ") + Provider.credentials, text_literal("")))


def service_name_sql():
    """SQL twin of ``resources.service_name``."""
    prefix = case(*[(Provider.role == role, text_literal(name))
                    for role, name in terms.SERVICE_NAMES.items()], else_=text_literal(""))
    return (prefix + text_literal(" with ") + Provider.first_name + text_literal(" ")
            + Provider.last_name)


def address_columns(model=Provider) -> list:
    """The string parts of a rendered practice address (``country`` is always US)."""
    return [model.address_line1, model.address_line2, model.city, model.state, model.zip,
            text_literal("US")]


def organization_address(snapshot: Snapshot, match: Callable):
    """SQL: one of the clinic's public practice addresses satisfies ``match(listing alias)``."""
    listing = aliased(Provider)
    return select(listing.id).where(
        listing.clinic_id == Clinic.id, public_listing(snapshot, listing),
        listing_has_location(listing), match(listing)).exists()


def organization_last_updated(snapshot: Snapshot):
    """SQL twin of an Organization's ``meta.lastUpdated``: the later of the clinic's creation
    and the last update of its public practice listings."""
    listing = aliased(Provider)
    latest = select(func.max(listing.updated_at)).where(
        listing.clinic_id == Clinic.id, public_listing(snapshot, listing),
        listing_has_location(listing)).scalar_subquery()
    return type_coerce(case((latest > Clinic.created_at, latest), else_=Clinic.created_at),
                       UTCDateTime)


def _types_with_role_code(code: str) -> list[str]:
    return [t for t, (found, _) in terms.PROVIDER_ROLE_CODES.items() if found == code]


def _fixed(code: str):
    """Token matcher for a code every resource of the type has."""
    return lambda given: true() if given in (None, code) else false()


def _json_codes(column):
    return lambda code: json_array_has(column, code) if code else json_array_nonempty(column)


# ---------------------------------------------------------------------------
# The resource types


def _listing_kind(name: str, exists: Callable[[Snapshot], object]) -> Kind:
    kind = Kind(name, Provider, exists)
    kind.params["_id"] = id_param(Provider)
    kind.params["_lastUpdated"] = last_updated_param(
        lambda s: Provider.updated_at, "When the listing was last changed (meta.lastUpdated).")
    return kind


def _public(snapshot: Snapshot):
    return public_listing(snapshot)


def _public_located(snapshot: Snapshot):
    return and_(public_listing(snapshot), listing_has_location())


PRACTITIONER = _listing_kind("Practitioner", _public)
PRACTITIONER.params.update({
    "name": string_param(
        "name", f"{PLAN_NET_SP}/practitioner-name",
        "Given name, family name, or the whole name text (\"Maya Okafor, LCSW\").",
        lambda s: [Provider.first_name, Provider.last_name, person_text()]),
    "family": string_param("family", f"{PLAN_NET_SP}/practitioner-family-name",
                           "Family (last) name.", lambda s: [Provider.last_name]),
    "given": string_param("given", f"{PLAN_NET_SP}/practitioner-given-name",
                          "Given (first) name.", lambda s: [Provider.first_name]),
    "identifier": token_param(
        "identifier", f"{CORE}/Practitioner-identifier",
        f"NPI ({terms.NPI_SYSTEM}|<npi>).",
        [(lambda: terms.NPI_SYSTEM,
          lambda code: Provider.npi == code if code else true())]),
})

LOCATION = _listing_kind("Location", _public_located)
LOCATION.params.update({
    "address": string_param(
        "address", f"{PLAN_NET_SP}/location-address",
        "Any part of the address: street, city, state, postal code, country.",
        lambda s: address_columns()),
    "address-city": string_param("address-city", f"{PLAN_NET_SP}/location-address-city",
                                 "City.", lambda s: [Provider.city]),
    "address-state": string_param("address-state", f"{PLAN_NET_SP}/location-address-state",
                                  "State (USPS code, e.g. MA).", lambda s: [Provider.state]),
    "address-postalcode": string_param(
        "address-postalcode", f"{PLAN_NET_SP}/location-address-postalcode",
        "Postal code (five-digit ZIP).", lambda s: [Provider.zip]),
    "organization": reference_param(
        "organization", f"{PLAN_NET_SP}/location-organization",
        "The managing Organization (clinic).", "Organization", column=Provider.clinic_id),
    "type": token_param(
        "type", f"{PLAN_NET_SP}/location-type",
        f"{terms.V3_ROLE_CODE_SYSTEM}|OF (every practice is an outpatient facility).",
        [(lambda: terms.V3_ROLE_CODE_SYSTEM, _fixed(terms.LOCATION_TYPE[0]))]),
    "near": Param("near", "special", f"{CORE}/Location-near",
                  "latitude|longitude|distance|unit (km by default; m, [mi_i]); distance "
                  "defaults to 50 km, at most 500 km. Geodesic distance (WGS-84); each match "
                  "carries its distance in the location-distance extension of entry.search. "
                  "Results stay in id order."),
})

HEALTHCARE_SERVICE = _listing_kind("HealthcareService", _public)
HEALTHCARE_SERVICE.params.update({
    "service-category": token_param(
        "service-category", f"{PLAN_NET_SP}/healthcareservice-service-category",
        f"{terms.SERVICE_CATEGORY_SYSTEM}|behav (every service is behavioral health).",
        [(lambda: terms.SERVICE_CATEGORY_SYSTEM, _fixed(terms.SERVICE_CATEGORY[0]))]),
    "service-type": token_param(
        "service-type", f"{PLAN_NET_SP}/healthcareservice-service-type",
        "A therapy modality of our modality CodeSystem (e.g. CBT, EMDR).",
        [(lambda: terms.code_system_url("modality"), _json_codes(Provider.modalities))]),
    "specialty": token_param(
        "specialty", f"{PLAN_NET_SP}/healthcareservice-specialty",
        f"NUCC taxonomy code ({terms.NUCC_SYSTEM}|<code>).",
        [(lambda: terms.NUCC_SYSTEM, _json_codes(Provider.taxonomy_codes))]),
    "organization": reference_param(
        "organization", f"{PLAN_NET_SP}/healthcareservice-organization",
        "The Organization (clinic) providing the service.", "Organization",
        column=Provider.clinic_id),
    "location": reference_param(
        "location", f"{PLAN_NET_SP}/healthcareservice-location",
        "The Location where the service is offered in person.", "Location", same_row=True),
    "name": string_param("name", f"{PLAN_NET_SP}/healthcareservice-name",
                         "The service name (\"Psychotherapy with Maya Okafor\").",
                         lambda s: [service_name_sql()]),
})

PRACTITIONER_ROLE = _listing_kind("PractitionerRole", _public)
PRACTITIONER_ROLE.params.update({
    "practitioner": reference_param(
        "practitioner", f"{PLAN_NET_SP}/practitionerrole-practitioner",
        "The Practitioner.", "Practitioner", same_row=True),
    "organization": reference_param(
        "organization", f"{PLAN_NET_SP}/practitionerrole-organization",
        "The Organization (clinic).", "Organization", column=Provider.clinic_id),
    "location": reference_param(
        "location", f"{PLAN_NET_SP}/practitionerrole-location",
        "The practice Location.", "Location", same_row=True),
    "service": reference_param(
        "service", f"{PLAN_NET_SP}/practitionerrole-service",
        "The HealthcareService.", "HealthcareService", same_row=True),
    "role": token_param(
        "role", f"{PLAN_NET_SP}/practitionerrole-role",
        f"Plan-Net provider role ({terms.PROVIDER_ROLE_SYSTEM}|py, sw, co, mt, ph, apn, pa, "
        "...) or our listing role (therapist, prescriber).",
        [(lambda: terms.PROVIDER_ROLE_SYSTEM,
          lambda code: Provider.provider_type.in_(_types_with_role_code(code)) if code
          else true()),
         (lambda: terms.code_system_url("listing-role"),
          lambda code: Provider.role == code if code else true())]),
    "specialty": token_param(
        "specialty", f"{PLAN_NET_SP}/practitionerrole-specialty",
        f"NUCC taxonomy code ({terms.NUCC_SYSTEM}|<code>).",
        [(lambda: terms.NUCC_SYSTEM, _json_codes(Provider.taxonomy_codes))]),
})

ORGANIZATION = Kind("Organization", Clinic, lambda snapshot: true())
ORGANIZATION.params.update({
    "_id": id_param(Clinic),
    "_lastUpdated": last_updated_param(
        organization_last_updated,
        "The later of the clinic's creation and the last change of its public practice "
        "listings (whose addresses the Organization shows)."),
    "name": string_param("name", f"{PLAN_NET_SP}/organization-name", "The clinic's name.",
                         lambda s: [Clinic.name]),
    "address": Param(
        "address", "string", f"{PLAN_NET_SP}/organization-address",
        "Any part of one of the clinic's practice addresses (those of its public "
        "in-person listings).",
        lambda occurrence, snapshot: _or(
            organization_address(snapshot, lambda listing, v=value: string_matches(
                address_columns(listing), v.replace("\\|", "|"), occurrence.modifier))
            for value in occurrence.values()),
        frozenset({"exact", "contains"})),
    "type": token_param(
        "type", f"{PLAN_NET_SP}/organization-type",
        f"{terms.ORG_TYPE_SYSTEM}|prvgrp (every clinic is a provider group).",
        [(lambda: terms.ORG_TYPE_SYSTEM, _fixed(terms.ORGANIZATION_TYPE[0]))]),
    "partof": reference_param(
        "partof", f"{PLAN_NET_SP}/organization-partof",
        "The parent Organization (clinics have none, so this matches nothing).",
        "Organization"),
    "identifier": token_param(
        "identifier", f"{CORE}/Organization-identifier",
        f"Organization NPI ({terms.NPI_SYSTEM}|<npi>) or our clinic id.",
        [(lambda: terms.NPI_SYSTEM,
          lambda code: Clinic.organization_npi == code if code
          else Clinic.organization_npi.is_not(None)),
         (terms.clinic_id_system,
          lambda code: (Clinic.id == int(code) if RESOURCE_ID.match(code) else false())
          if code else true())]),
})

#: Every searchable resource type by name.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    PRACTITIONER, PRACTITIONER_ROLE, ORGANIZATION, LOCATION, HEALTHCARE_SERVICE)}


def revinclude_sources(target: str) -> list[tuple[str, str]]:
    """``(source type, parameter)`` pairs whose reference points to ``target``."""
    return [(kind.name, name) for kind in KINDS.values()
            for name, param in kind.references().items() if param.target == target]


# ---------------------------------------------------------------------------
# Loading resources


class ResourceLoader:
    """Loads and renders resources for one request, reading each listing row once."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.listings: dict[int, Provider] = {}
        self.organizations: dict[int, dict] = {}

    def _fetch_listings(self, ids) -> None:
        missing = [i for i in dict.fromkeys(ids) if i not in self.listings]
        for start in range(0, len(missing), 900):
            chunk = missing[start:start + 900]
            for provider in db.session.scalars(select(Provider).options(
                    joinedload(Provider.clinic)).where(Provider.id.in_(chunk))):
                self.listings[provider.id] = provider

    def render(self, kind_name: str, ids: list[int]) -> list[tuple[int, dict]]:
        """``[(id, resource)]`` of ``kind_name`` for the ``ids`` that exist publicly, in order."""
        if kind_name == "Organization":
            self._fetch_organizations(ids)
            return [(i, self.organizations[i]) for i in dict.fromkeys(ids)
                    if i in self.organizations]
        self._fetch_listings(ids)
        build = resources.LISTING_BUILDERS[kind_name]
        found = []
        for i in dict.fromkeys(ids):
            provider = self.listings.get(i)
            if provider is None or not is_public(provider, self.snapshot):
                continue
            if kind_name == "Location" and not has_location(provider):
                continue
            found.append((i, build(provider, self.snapshot)))
        return found

    def _fetch_organizations(self, ids) -> None:
        missing = [i for i in dict.fromkeys(ids) if i not in self.organizations]
        if not missing:
            return
        clinics = {c.id: c for c in db.session.scalars(select(Clinic).where(
            Clinic.id.in_(missing)))}
        addresses: dict[int, dict] = {i: {} for i in clinics}
        latest = {i: c.created_at for i, c in clinics.items()}
        rows = db.session.execute(
            select(Provider.clinic_id, Provider.address_line1, Provider.address_line2,
                   Provider.city, Provider.state, Provider.zip, Provider.latitude,
                   Provider.longitude, Provider.updated_at)
            .where(Provider.clinic_id.in_(list(clinics)), public_listing(self.snapshot),
                   listing_has_location())
            .order_by(Provider.clinic_id, Provider.id))
        for row in rows:
            key = (row.address_line1, row.address_line2, row.city, row.state, row.zip)
            addresses[row.clinic_id].setdefault(key, resources.practice_address(
                *key, row.latitude, row.longitude))
            latest[row.clinic_id] = max(latest[row.clinic_id], row.updated_at)
        for i, clinic in clinics.items():
            self.organizations[i] = resources.organization(
                clinic, list(addresses[i].values()), latest[i])

    def include_targets(self, kind: Kind, param_name: str, ids: list[int]) -> list[int]:
        """Ids of the resources ``param_name`` of ``kind``'s resources ``ids`` point to."""
        param = kind.params[param_name]
        if param.same_row:
            return list(ids)
        if param.column is None:
            return []
        self._fetch_listings(ids)
        return sorted({self.listings[i].clinic_id for i in ids if i in self.listings
                       and self.listings[i].clinic_id is not None})

    def revinclude_sources(self, source: Kind, param_name: str, target_ids: list[int]) -> list[int]:
        """Ids of ``source`` resources whose ``param_name`` points to one of ``target_ids``."""
        param = source.params[param_name]
        if param.same_row:
            return list(target_ids)
        if param.column is None or not target_ids:
            return []
        return list(db.session.scalars(select(source.model.id).where(
            param.column.in_(target_ids), source.exists(self.snapshot))
            .order_by(source.model.id)))


assert set(terms.PROVIDER_ROLE_CODES) == set(PROVIDER_TYPES)
