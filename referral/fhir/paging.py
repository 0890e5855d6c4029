"""Running a FHIR search: conditions, stable paging, includes, and the searchset Bundle.

Paging is by key, not offset: results are in id order and the ``next`` link
carries ``_cursor=<last id>.<moment>.<signature>``, so a page starts right after the last id
seen, whatever was inserted, changed or deactivated meanwhile, and every page
applies the visibility cut-off of the moment the first page was evaluated. A
listing that matches throughout is returned exactly once; one that starts or
stops matching while a client pages appears or not, but never twice. The cursor is signed
with the app's secret key and lives a day: the moment decides visibility, so a client
cannot move it to see listings that are no longer public.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

import numpy as np
from sqlalchemy import func, select

from search_index.distance import bounding_box, within_radius

from ..extensions import db
from ..models import Provider
from . import terms
from .kinds import KINDS, Kind, ResourceLoader, UnknownParameter, condition
from .outcome import FhirError, issue, operation_outcome
from .params import DISTANCE_UNITS, Cursor, NearPoint, SearchRequest, parse_near, parse_search
from .visibility import Snapshot

KM_PER_MILE = 1.609344


def resolve_includes(kind: Kind, request: SearchRequest) -> tuple[list, list]:
    """``(includes, revincludes)`` as ``(source kind, parameter)``; unknown ones are ignored
    (listed in ``request.ignored``), or refused under strict handling."""
    includes, revincludes = [], []
    for value in request.includes:
        source, _, rest = value.partition(":")
        name, _, target = rest.partition(":")
        param = kind.references().get(name) if source == kind.name else None
        if param is None or (target and target != param.target):
            request.ignored.append(f"_include={value}")
            request.used.remove(("_include", value))
        else:
            includes.append((kind, name))
    for value in request.revincludes:
        source, _, rest = value.partition(":")
        name, _, target = rest.partition(":")
        source_kind = KINDS.get(source)
        param = source_kind.references().get(name) if source_kind else None
        if param is None or param.target != kind.name or (target and target != kind.name):
            request.ignored.append(f"_revinclude={value}")
            request.used.remove(("_revinclude", value))
        else:
            revincludes.append((source_kind, name))
    return includes, revincludes


def build_conditions(kind: Kind, request: SearchRequest,
                     snapshot: Snapshot) -> tuple[list, NearPoint | None]:
    """SQL conditions of every occurrence (AND), and the ``near`` point if one is given."""
    clauses, near = [], None
    for occurrence in request.occurrences:
        if occurrence.name == "near" and kind.params.get("near") is not None:
            if occurrence.chain or occurrence.modifier:
                raise FhirError(400, "near takes no modifier or chain.", code="not-supported",
                                expression=occurrence.key)
            if near is not None or len(occurrence.values()) > 1:
                raise FhirError(400, "Give one near point.", expression="near")
            near = parse_near(occurrence.raw)
            continue
        try:
            clauses.append(condition(kind, occurrence, snapshot))
        except UnknownParameter:
            request.ignored.append(occurrence.key)
            request.used = [pair for pair in request.used if pair[0] != occurrence.key]
    return clauses, near


def _near_matches(kind: Kind, clauses: list, near: NearPoint, snapshot: Snapshot):
    """``(ids in order, {id: distance in the asked unit})`` of resources within the radius."""
    radius_miles = near.radius_km / KM_PER_MILE
    south, north, west, east = bounding_box(near.latitude, near.longitude, radius_miles)
    rows = db.session.execute(
        select(Provider.id, Provider.latitude, Provider.longitude)
        .where(kind.exists(snapshot), *clauses, Provider.latitude.between(south, north),
               Provider.longitude.between(west, east))
        .order_by(Provider.id)).all()
    if not rows:
        return [], {}
    ids = np.array([row.id for row in rows], dtype=np.int64)
    lats = np.array([row.latitude for row in rows], dtype=float)
    lons = np.array([row.longitude for row in rows], dtype=float)
    inside, miles = within_radius(near.latitude, near.longitude, lats, lons, radius_miles)
    per_unit = KM_PER_MILE / DISTANCE_UNITS[near.unit]
    matched = ids[inside].tolist()
    distances = dict(zip(matched, (miles[inside] * per_unit).tolist(), strict=False))
    return matched, distances


def _link(relation: str, snapshot: Snapshot, kind: Kind, pairs: list[tuple[str, str]]) -> dict:
    query = urlencode(pairs)
    return {"relation": relation,
            "url": f"{snapshot.base_url}/{kind.name}" + (f"?{query}" if query else "")}


def _entry(snapshot: Snapshot, resource: dict, mode: str, extension: list | None = None) -> dict:
    search = {"mode": mode}
    if extension:
        search["extension"] = extension
    return {"fullUrl": f"{snapshot.base_url}/{resource['resourceType']}/{resource['id']}",
            "resource": resource, "search": search}


def _distance_extension(value: float, unit: str) -> list:
    return [{"url": terms.EXT_LOCATION_DISTANCE, "valueDistance": {
        "value": round(value, 3), "unit": unit, "system": terms.UCUM_SYSTEM,
        "code": unit if unit != "mi" else "[mi_i]"}}]


def search_bundle(kind: Kind, pairs: list[tuple[str, str]], strict: bool,
                  snapshot: Snapshot, secret: str) -> dict:
    """Run a search on ``kind`` with query ``pairs``; the searchset Bundle of one page.
    ``secret`` signs the paging positions of its links."""
    request = parse_search(pairs, lambda name: name in kind.params, strict, secret,
                           snapshot.now)
    if request.cursor is not None:
        snapshot = dataclasses.replace(snapshot, now=request.cursor.at)
    includes, revincludes = resolve_includes(kind, request)
    clauses, near = build_conditions(kind, request, snapshot)
    if request.strict and request.ignored:
        raise FhirError(400, "Unknown or unsupported search parameters (Prefer: "
                             "handling=strict): " + ", ".join(request.ignored) + ".",
                        code="not-supported")
    after = request.cursor.after if request.cursor else 0
    distances: dict[int, float] = {}
    if near is not None:
        matched, distances = _near_matches(kind, clauses, near, snapshot)
        total = len(matched)
        remaining = [i for i in matched if i > after]
        page_ids = remaining[:request.count]
        more = len(remaining) > request.count
    else:
        model = kind.model
        base = select(model.id).where(kind.exists(snapshot), *clauses)
        total, page_ids = None, []
        if request.count and after == 0 and request.total:
            # first page: the total comes with the rows (a window over the whole match)
            rows = db.session.execute(base.add_columns(func.count().over()).order_by(
                model.id).limit(request.count + 1)).all()
            page_ids = [row[0] for row in rows]
            total = rows[0][1] if rows else 0
        else:
            if request.total:
                total = db.session.scalar(select(func.count()).select_from(base.subquery()))
            if request.count:
                page_ids = list(db.session.scalars(
                    base.where(model.id > after).order_by(model.id).limit(request.count + 1)))
        more = len(page_ids) > request.count
        page_ids = page_ids[:request.count]

    loader = ResourceLoader(snapshot)
    matches = loader.render(kind.name, page_ids)
    entries = [_entry(snapshot, resource, "match",
                      _distance_extension(distances[i], near.unit) if near else None)
               for i, resource in matches]
    seen = {(kind.name, i) for i, _ in matches}
    matched_ids = [i for i, _ in matches]
    for source, name in includes:
        target = source.params[name].target
        for i, resource in loader.render(target, loader.include_targets(source, name,
                                                                          matched_ids)):
            if (target, i) not in seen:
                seen.add((target, i))
                entries.append(_entry(snapshot, resource, "include"))
    for source, name in revincludes:
        for i, resource in loader.render(source.name, loader.revinclude_sources(
                source, name, matched_ids)):
            if (source.name, i) not in seen:
                seen.add((source.name, i))
                entries.append(_entry(snapshot, resource, "include"))
    if request.ignored:
        entries.append({"resource": operation_outcome([issue(
            "warning", "not-supported",
            "Ignored unknown or unsupported parameters: " + ", ".join(request.ignored) + ".")]),
            "search": {"mode": "outcome"}})

    used = list(request.used)
    links = []
    here = used + ([("_cursor", Cursor(after, snapshot.now).token(secret))]
                   if request.cursor else [])
    links.append(_link("self", snapshot, kind, here))
    links.append(_link("first", snapshot, kind, used))
    if more and page_ids:
        following = Cursor(page_ids[-1], snapshot.now).token(secret)
        links.append(_link("next", snapshot, kind, used + [("_cursor", following)]))
    bundle = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle
