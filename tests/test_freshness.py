"""Unit tests of freshness without a database: the one ranking rule for stale and
reported listings (``search_index.searcher.freshness``) through the in-memory search
service, ``verification`` on search items, and the one wording of freshness."""

from __future__ import annotations

import datetime as dt

from referral.schemas.search import SearchQuerySchema
from referral.search import search_providers
from referral.search_service import InMemorySearchService
from referral.wording import hidden_notice, verified_text

NOW = dt.datetime.now(dt.UTC)


def find(service, **params):
    return search_providers(service, None, SearchQuerySchema().load(params), dump_listing=None)


def test_reported_listings_rank_with_stale_ones_after_the_verified(rendered):
    close = rendered(last_name="Close", zip="02115")
    reported = {**rendered(last_name="Flagged", zip="02115"), "reported_at": NOW}
    stale = rendered(last_name="Old", zip="02115", verified_days_ago=120)
    farther = rendered(last_name="Farther", zip="02139")
    service = InMemorySearchService([reported, stale, close, farther])
    for sort in ("relevance", "distance", "fee", "availability"):
        order = [item["id"] for item in find(service, zip="02115", sort=sort)["items"]]
        assert set(order[:2]) == {close["id"], farther["id"]}, sort
        assert set(order[2:]) == {reported["id"], stale["id"]}, sort
    items = {item["id"]: item for item in find(service, zip="02115")["items"]}
    assert items[reported["id"]]["verification"] == {
        "at": reported["last_verified_at"], "by": "Harbor Counseling", "stale": False,
        "reported": True}
    assert items[stale["id"]]["verification"]["stale"] is True
    assert items[stale["id"]]["verification"]["reported"] is False


def test_the_wording_of_freshness():
    at = NOW - dt.timedelta(days=3, hours=1)
    assert verified_text({"at": at, "by": "Harbor", "stale": False}) == \
        "Verified 3 days ago by Harbor"
    assert verified_text({"at": NOW - dt.timedelta(hours=30), "by": None, "stale": False}) == \
        "Verified 1 day ago"
    assert verified_text({"at": (NOW - dt.timedelta(days=120)).isoformat(), "by": "Harbor",
                          "stale": True}) == "Not verified for 120 days"
    assert verified_text({"at": None, "by": "Harbor", "stale": True}) == "Never verified"
    assert hidden_notice({"at": NOW - dt.timedelta(days=365)}, 365) is None
    assert "has not confirmed it for 366 days, more than 365 days" in hidden_notice(
        {"at": NOW - dt.timedelta(days=366)}, 365)
    assert "has never confirmed it" in hidden_notice({"at": None}, 365)
