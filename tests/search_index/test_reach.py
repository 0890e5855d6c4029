"""The reach rule: the per-listing answer and the vectorised mask agree on a corpus."""

from __future__ import annotations

import random

import numpy as np

from referral.geo import distance_miles, zip_table
from referral.search_sync import VOCABULARIES, table_record
from search_index.reach import Patient, reach, reach_mask
from search_index.table import ProviderTable
from tests.conftest import generated_directory


def test_reach_and_reach_mask_agree():
    listings = generated_directory(3000, seed=7)
    table = ProviderTable(VOCABULARIES)
    table.upsert(table_record({**item, "clinic_id": item["clinic"]["id"]}) for item in listings)
    rng = random.Random(3)
    places = rng.sample(sorted({item["zip"] for item in listings}), 25)
    checked = 0
    for zip_code in places:
        place = zip_table()[zip_code]
        for patient in (
                Patient(state=place.state, point=(place.latitude, place.longitude),
                        radius_miles=rng.choice((5.0, 25.0, 100.0))),
                Patient(state=place.state),
                Patient(state=place.state, in_person=False),
                Patient(state=place.state, point=(place.latitude, place.longitude),
                        telehealth=False)):
            mask, distances = reach_mask(table, np.ones(len(table), dtype=bool), patient)
            for listing in listings:
                distance = (distance_miles(patient.point, (listing["latitude"],
                                                           listing["longitude"]))
                            if patient.point else None)
                if distance is not None and abs(distance - patient.radius_miles) < 0.01:
                    continue  # two distance formulas may round a boundary differently
                row = table.row_of_id[listing["id"]]
                assert bool(mask[row]) == bool(reach(listing, patient, distance)), \
                    (listing["id"], patient)
                checked += 1
    assert checked > 250_000
