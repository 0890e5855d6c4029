"""The one reach rule: can this provider see this patient, and how?

A provider reaches a patient **in person** when the provider sees patients in
person and the practice is within the patient's radius (or, when the patient
gave only a state, the practice is in that state); and **by telehealth** when
the provider offers telehealth and is licensed in the patient's state (care is
delivered where the patient is). The patient may rule either way out.

``reach`` answers for one listing; ``reach_mask`` is the same rule over a
``ProviderTable`` (vectorised) for search and matching. A test checks that the
two agree on a corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .distance import bounding_box, within_radius
from .table import ProviderTable

IN_PERSON, TELEHEALTH = "in_person", "telehealth"


@dataclass(frozen=True)
class Patient:
    """Where a patient is and how they can be seen (``Criteria`` has the same attributes)."""

    state: str | None = None
    point: tuple[float, float] | None = None
    radius_miles: float = 25.0
    in_person: bool = True
    telehealth: bool = True


def reach(listing: Mapping, patient, distance: float | None = None) -> list[str]:
    """How a listing (its ``in_person``, ``telehealth``, ``state`` and ``licensed_states``)
    can see ``patient``: ``[]``, ``["in_person"]``, ``["telehealth"]`` or both.

    ``distance`` is the practice's distance from ``patient.point`` in miles (None
    when the patient gave no point or the practice has no coordinates).
    """
    ways = []
    if listing["in_person"] and patient.in_person and (
            (patient.point is not None and distance is not None
             and distance <= patient.radius_miles)
            or (patient.point is None and patient.state is not None
                and listing["state"] == patient.state)):
        ways.append(IN_PERSON)
    if patient.telehealth and patient.state and listing["telehealth"] \
            and patient.state in (listing["licensed_states"] or ()):
        ways.append(TELEHEALTH)
    return ways


def reach_mask(table: ProviderTable, mask: np.ndarray, patient,
               remembered: dict | None = None,
               with_distances: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``(reachable, distances)`` over the table: rows of ``mask`` that can see ``patient``
    (all of ``mask`` when the patient gave neither point nor state), and each row's
    distance in miles from ``patient.point`` (NaN where not computed; None without
    ``with_distances``).

    ``remembered`` (a dict kept by the caller, e.g. one search's memo) keeps the masks
    that depend on the patient alone (practices in person within the radius's box, in
    the state, licensed in it) for later calls; distances are computed for rows of
    ``mask`` only, so a narrow ``mask`` costs little.
    """
    size = len(table)
    col = table.column

    def part(key: tuple, compute):
        if remembered is None:
            return compute()
        found = remembered.get(key)
        if found is None:
            found = remembered[key] = compute()
        return found

    distances = np.full(size, np.nan) if with_distances else None
    reachable = None
    if patient.point is not None and patient.in_person:
        lat, lon = patient.point
        south, north, west, east = bounding_box(lat, lon, patient.radius_miles)
        lats, lons = col("latitude"), col("longitude")
        boxed = part(("boxed", lat, lon, patient.radius_miles), lambda: (
            col("in_person") & (lats >= south) & (lats <= north) & (lons >= west)
            & (lons <= east)))
        candidates = np.flatnonzero(mask & boxed)
        inside, miles = within_radius(lat, lon, lats[candidates], lons[candidates],
                                      patient.radius_miles)
        if distances is not None:
            distances[candidates] = miles
        reachable = np.zeros(size, dtype=bool)
        reachable[candidates[inside]] = True
    elif patient.point is None and patient.state and patient.in_person:
        reachable = part(("in_state", patient.state), lambda: col("in_person") & (
            col("state") == table.codes["state"].get(patient.state, -2)))
    if patient.state and patient.telehealth:
        bits = table.bits("licensed_states", [patient.state])
        licensed = part(("licensed", patient.state), lambda: col("telehealth") & (
            (col("licensed_states") & col("licensed_states").dtype.type(bits)) != 0))
        reachable = licensed if reachable is None else reachable | licensed
    return (mask if reachable is None else mask & reachable), distances
