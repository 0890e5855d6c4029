"""The columnar provider table, its snapshots, and vectorised distances."""

import random

import numpy as np
import pytest
from geopy.distance import geodesic

from search_index.distance import lambert_miles, within_radius
from search_index.searcher import Criteria, search
from search_index.table import SMALL_COUNT, ProviderTable, bit_counts

VOCAB = {"modalities": ("CBT", "DBT", "EMDR"), "concerns": ("depression", "ocd"),
         "age_groups": ("child", "adult"), "languages": ("en", "es"),
         "insurance": ("aetna", "bcbs"), "licensed_states": ("MA", "NY", "CA"),
         "specialties": ("mat", "veterans"),
         "role": ("therapist", "prescriber"), "provider_type": ("counselor", "psychiatrist"),
         "gender": ("female", "male", "non-binary"), "state": ("MA", "NY", "CA")}
NOW = 1_800_000_000.0


def record(pid, **overrides):
    base = {"id": pid, "role": "therapist", "provider_type": "counselor", "gender": "female",
            "state": "MA", "modalities": ["CBT"], "concerns": ["depression"],
            "age_groups": ["adult"], "languages": ["en"], "insurance": ["aetna"],
            "licensed_states": ["MA"], "telehealth": True, "in_person": True,
            "sliding_scale": False, "accepting_new_patients": True,
            "accepts_coordinated_care": True, "active": True, "latitude": 42.34,
            "longitude": -71.09, "fee_min": 100, "fee_max": 150, "wait_days": 7,
            "verified_at": NOW - 86400, "clinic_id": 1}
    base.update(overrides)
    return base


def test_upsert_replaces_by_id_and_grows():
    table = ProviderTable(VOCAB, capacity=2)
    table.upsert(record(i) for i in range(1, 40))
    table.upsert([record(5, modalities=["DBT", "EMDR"], fee_min=None)])
    assert len(table) == 39
    row = table.row_of_id[5]
    assert table.column("modalities")[row] == 0b110
    assert table.column("fee_min")[row] == -1
    table.remove([5])
    assert not table.column("active")[row]
    assert list(table.rows_for_ids(np.array([5, 999, -3]))) == [row, -1, -1]


def test_unknown_vocabulary_values_are_ignored_and_counts_are_right():
    table = ProviderTable(VOCAB)
    table.upsert([record(1, languages=["en", "xx"]), record(2, languages=["es", "en"]),
                  record(3, provider_type="psychiatrist", role="prescriber")])
    rows = np.arange(3)
    assert table.value_counts("languages", rows) == {"en": 3, "es": 1}
    assert table.value_counts("provider_type", rows) == {"counselor": 2, "psychiatrist": 1}


def test_snapshot_round_trip(tmp_path):
    table = ProviderTable(VOCAB)
    table.upsert(record(i, fee_min=i) for i in (3, 1, 7))
    table.position = 42
    path = str(tmp_path / "t.npz")
    table.save(path)
    loaded = ProviderTable.load(path, VOCAB)
    assert loaded.position == 42 and len(loaded) == 3
    assert loaded.column("fee_min")[loaded.row_of_id[7]] == 7
    assert ProviderTable.load(path, {**VOCAB, "languages": ("en",)}) is None
    assert ProviderTable.load(str(tmp_path / "missing.npz"), VOCAB) is None


def test_search_filters_ranks_and_pages():
    table = ProviderTable(VOCAB)
    table.upsert([
        record(1, fee_min=90), record(2, fee_min=300), record(3, accepting_new_patients=False),
        record(4, verified_at=NOW - 100 * 86400), record(5, verified_at=NOW - 400 * 86400),
        record(6, telehealth=False, latitude=40.75, longitude=-73.99, state="NY",
               licensed_states=["NY"]),
    ])
    hits = search(table, Criteria(now=NOW, max_fee=200, sort="fee", limit=10))
    assert list(hits.ids) == [1, 6, 4]  # stale (4) last; 2 too dear; 3 not accepting; 5 hidden
    assert list(hits.stale) == [False, False, True]
    nearby = search(table, Criteria(now=NOW, point=(40.75, -73.99), state="NY",
                                    radius_miles=5))
    assert list(nearby.ids) == [6] and nearby.distances[0] == pytest.approx(0, abs=0.01)
    page_two = search(table, Criteria(now=NOW, include_stale=True, sort="fee", offset=2, limit=2))
    assert page_two.total == 5 and len(page_two.ids) == 2


def test_lambert_agrees_with_geopy_geodesic():
    rng = random.Random(4)
    lat, lon = 39.0, -98.0
    lats = np.array([rng.uniform(20, 60) for _ in range(300)])
    lons = np.array([rng.uniform(-160, -60) for _ in range(300)])
    fast = lambert_miles(lat, lon, lats, lons)
    for index in range(300):
        exact = geodesic((lat, lon), (lats[index], lons[index])).miles
        assert fast[index] == pytest.approx(exact, abs=0.02)
    assert lambert_miles(lat, lon, np.array([lat]), np.array([lon]))[0] == 0


@pytest.mark.parametrize("radius", [25, 250])
def test_radius_decisions_at_the_border_follow_geopy(radius):
    lat, lon = 42.0, -71.0
    points = [geodesic(miles=radius + delta).destination((lat, lon), bearing)
              for delta in (-0.0001, 0.0001) for bearing in range(0, 360, 15)]
    lats = np.array([p.latitude for p in points])
    lons = np.array([p.longitude for p in points])
    inside, distances = within_radius(lat, lon, lats, lons, radius)
    for index, point in enumerate(points):
        assert inside[index] == (geodesic((lat, lon), (point.latitude, point.longitude)).miles
                                 <= radius)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("size", [0, 1, 7, SMALL_COUNT - 1, SMALL_COUNT, 50_003])
@pytest.mark.parametrize("zero_share", [0.2, 0.97, 1.0])
def test_bit_counts_equal_counting_each_bit_alone(dtype, size, zero_share):
    """Dense words, words zero in most rows (the sparse path) and in all but a few."""
    bits = 8 * np.dtype(dtype).itemsize
    rng = np.random.default_rng(size + bits)
    column = rng.integers(0, 2 ** min(bits, 63), size=size, dtype=np.uint64).astype(dtype)
    column[rng.random(size) < zero_share] = 0
    column[1::11] = np.iinfo(dtype).max  # every bit set, the highest included
    expected = [int(np.count_nonzero(column & dtype(1 << bit))) for bit in range(bits)]
    assert bit_counts(column).tolist() == expected
    # A vocabulary narrower than the column: the bits past it are not counted, whatever
    # they hold (words with few vocabulary bits are counted bit by bit).
    for width in {1, 2, 3, 4, 15, 16, 17, 19, 33, 47, bits - 1, bits}:
        if width <= bits:
            assert bit_counts(column, width).tolist() == expected[:width]


def test_listings_sharing_a_place_at_the_border_get_its_exact_geodesic():
    """Borderline places measured once each give every listing there geopy's distance."""
    lat, lon, radius = 42.0, -71.0, 25.0
    places = [geodesic(miles=radius + delta).destination((lat, lon), bearing)
              for delta in (-0.0001, 0.0001) for bearing in (0, 90, 200)]
    order = [index % len(places) for index in range(30)]  # each place five times, mixed
    lats = np.array([places[index].latitude for index in order])
    lons = np.array([places[index].longitude for index in order])
    inside, distances = within_radius(lat, lon, lats, lons, radius)
    for row, index in enumerate(order):
        exact = geodesic((lat, lon), (places[index].latitude, places[index].longitude)).miles
        assert distances[row] == exact
        assert inside[row] == (exact <= radius)
