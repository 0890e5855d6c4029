"""The orjson-written answers are the JSON Flask's own provider writes: same values, same
key order, Flask's encoding of dates and the types orjson does not know."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid

import numpy as np
import pytest
from flask.json.provider import DefaultJSONProvider

from referral.json_provider import OrjsonProvider, encode


def ordered(body: bytes | str):
    """The JSON value with every object as a list of (key, value) pairs: key order counts."""
    return json.loads(body, object_pairs_hook=list)


def flask_body(app, value) -> str:
    """What Flask's own provider writes for ``value`` in a compact answer."""
    provider = DefaultJSONProvider(app)
    provider.sort_keys = app.json.sort_keys
    return provider.dumps(value, separators=(",", ":")) + "\n"


@dataclasses.dataclass
class Point:
    lat: float
    lon: float


def test_types_orjson_writes_its_own_way_follow_flask(app):
    value = {
        "when": dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC), "day": dt.date(2026, 12, 5),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "fee": decimal.Decimal("40.5"),
        "point": Point(42.3, -71.1), "name": "Jos\u00e9 O\u2019Brien \u201cquoted\u201d",
        "tuple": (1, 2.5, None, True), "nested": {"b": 1, "a": [{"z": 0.1, "y": 1e21}]},
        "numpy": np.float64(1.25), "huge": 2**70,
    }
    with app.app_context():
        body = app.json.response(value).get_data()
        assert ordered(body) == ordered(flask_body(app, value))
        assert body.endswith(b"\n")
        plain = {key: item for key, item in value.items() if key not in ("numpy", "huge")}
        assert encode(plain) is not None  # orjson wrote it (the other two fell back)
        assert ordered(encode(plain)) == ordered(flask_body(app, plain))
        assert encode({"huge": 2**70}) is None and encode({"numpy": np.float64(1)}) is None


def test_sort_keys_and_debug_output_are_flasks(app):
    provider, flasks = OrjsonProvider(app), DefaultJSONProvider(app)
    provider.sort_keys = True
    with app.app_context():
        assert provider.response({"b": 1, "a": 2}).get_data() == b'{"a":2,"b":1}\n'
        provider.compact = flasks.compact = False  # indented output is Flask's own
        assert provider.response({"b": 1}).get_data() == flasks.response({"b": 1}).get_data()


@pytest.mark.parametrize("query", [
    {"zip": "10001", "radius_miles": "50", "modality": "CBT", "insurance": "aetna"},
    {"q": "anxiety in teens", "state": "NY", "telehealth": "true"},
    {"q": "Dr. Garc\u00eda spanish", "zip": "60601", "per_page": "50"},
    {"q": "I want to die", "zip": "94110"},
    {"q": "qqqzzz", "zip": "02115", "max_fee": "20", "sliding_scale": "true"},
    {"zip": "99999"},  # an error answer
])
def test_search_answers_are_the_json_flask_writes(directory, query):
    """The same search answered through orjson and through Flask's own provider."""
    app, _ = directory
    client = app.test_client()
    path = "/api/v1/providers/search"
    fast = client.get(path, query_string=query)
    own = app.json
    app.json = DefaultJSONProvider(app)
    app.json.sort_keys = own.sort_keys
    try:
        plain = client.get(path, query_string=query)
    finally:
        app.json = own
    assert fast.status_code == plain.status_code
    assert fast.headers["Content-Type"] == plain.headers["Content-Type"]
    assert ordered(fast.get_data()) == ordered(plain.get_data())
    assert len(fast.get_data()) > 100
