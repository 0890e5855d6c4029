"""Offline ZIP geocoding behind geopy's geocoder interface, and distances."""

import socket

import pytest
from geopy.geocoders.base import Geocoder
from geopy.location import Location

from referral.geo import (
    ZipGeocoder,
    distance_miles,
    locate_practice,
    lookup_zip,
    make_geocoder,
    normalize_zip,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_zip_lookup_keeps_leading_zeros_and_accepts_zip_plus_four():
    place = lookup_zip("02115")
    assert (place.city, place.state) == ("Boston", "MA")
    assert lookup_zip("02115-1234") == place == lookup_zip("021151234")
    assert normalize_zip("2115") is None
    assert lookup_zip("00000") is None


def test_geocoder_has_geopys_interface():
    geocoder = make_geocoder("zip")
    assert isinstance(geocoder, (ZipGeocoder, Geocoder))
    location = geocoder.geocode("200 Longwood Ave, Boston, MA 02115")
    assert isinstance(location, Location)
    assert location.latitude == pytest.approx(42.34, abs=0.05)
    assert location.longitude == pytest.approx(-71.09, abs=0.05)
    assert geocoder.geocode("no zip here") is None
    assert geocoder.geocode("10001", exactly_one=False)[0].raw["state"] == "NY"
    assert geocoder.reverse((42.3427, -71.0922)).raw["zip"] == "02115"


def test_locate_practice_uses_the_zip_centroid_offline():
    lat, lon = locate_practice(ZipGeocoder(), address="1 Main St", city="Boston", state="MA",
                               zip_code="02115")
    assert (lat, lon) == (lookup_zip("02115").latitude, lookup_zip("02115").longitude)


def test_unknown_geocoder_is_a_configuration_error():
    with pytest.raises(RuntimeError):
        make_geocoder("carrier-pigeon")
    with pytest.raises(RuntimeError):
        make_geocoder("nominatim", user_agent="")


def test_geodesic_distance_boston_to_new_york():
    boston, new_york = lookup_zip("02115"), lookup_zip("10001")
    miles = distance_miles((boston.latitude, boston.longitude),
                           (new_york.latitude, new_york.longitude))
    assert 180 < miles < 200


def test_geodesic_distance_is_remembered_and_the_same_as_geopy():
    from geopy.distance import geodesic

    boston, worcester = lookup_zip("02115"), lookup_zip("01608")
    a, b = (boston.latitude, boston.longitude), (worcester.latitude, worcester.longitude)
    distance_miles.cache_clear()
    first = distance_miles(a, b)
    again = distance_miles(a, b)
    assert first == again == geodesic(a, b).km / 1.609344
    assert distance_miles.cache_info().hits == 1
