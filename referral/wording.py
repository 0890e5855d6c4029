"""Facts about a listing in plain words, as cards, reasons and pairs show them.

One place for the wording of fees (an honest range, never only the lowest fee),
of how a provider can see the patient and of how fresh a listing is, so the search
page, the provider page and the pairs never disagree.
"""

from __future__ import annotations

import datetime as dt


def money(amount: int) -> str:
    """``1200`` -> ``$1,200``."""
    return f"${amount:,}"


def fee_range(fee_min: int | None, fee_max: int | None) -> str | None:
    """``$40-$220`` (or ``$90`` when both ends are the same); None when no fee is listed."""
    if fee_min is None and fee_max is None:
        return None
    low = fee_min if fee_min is not None else fee_max
    high = fee_max if fee_max is not None else fee_min
    return money(low) if low == high else f"{money(low)}\u2013{money(high)}"


def fee_text(listing: dict) -> str:
    """A listing's fees as a card says them: ``Fees $40-$220 per session; sliding scale``."""
    fees = fee_range(listing.get("fee_min"), listing.get("fee_max"))
    text = f"Fees {fees} per session" if fees else "Fees not listed"
    return text + ("; sliding scale" if listing.get("sliding_scale") else "")


def pair_fee_text(therapist: dict, prescriber: dict) -> str | None:
    """What a first visit to each of a pair costs together, as a range:
    ``Fees together $95-$385 (therapist $35-$185, prescriber $60-$200)``."""
    sides = [(s.get("fee_min"), s.get("fee_max")) for s in (therapist, prescriber)]
    if any(low is None and high is None for low, high in sides):
        return None
    lows = [low if low is not None else high for low, high in sides]
    highs = [high if high is not None else low for low, high in sides]
    return (f"Fees together {fee_range(sum(lows), sum(highs))} "
            f"(therapist {fee_range(*sides[0])}, prescriber {fee_range(*sides[1])})")


def reach_badges(listing: dict, state: str | None) -> list[str]:
    """How a provider in search results can see this patient, as badges: ``In person`` only
    when within the patient's radius (or state), ``Telehealth (licensed in NY)`` when
    licensed in the patient's state. Without a patient location: what the listing offers."""
    if "reach" not in listing or (state is None and not listing["reach"]):
        offered = []
        if listing.get("in_person"):
            where = ", ".join(filter(None, (listing.get("city"), listing.get("state"))))
            offered.append(f"In person ({where})" if where else "In person")
        if listing.get("telehealth"):
            licensed = ", ".join(listing.get("licensed_states") or ())
            offered.append(f"Telehealth (licensed in {licensed})" if licensed else "Telehealth")
        return offered
    badges = []
    if "in_person" in listing["reach"]:
        badges.append("In person")
    if "telehealth" in listing["reach"]:
        badges.append(f"Telehealth (licensed in {state})")
    return badges


# ---------------------------------------------------------------------------
# Freshness: the one wording of how current a listing is (search cards, the provider
# page, the clinic pages; the API gives the same facts as ``verification``).

#: What a reported listing says (``referral.reports``): on its page, and on its cards.
REPORTED_NOTICE = "Patients reported that this listing may be out of date."
REPORTED_BADGE = "Reported out of date"


def days_since(when) -> int | None:
    """Whole days since a moment (a datetime or an ISO timestamp); None stays None."""
    if not when:
        return None
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0, (dt.datetime.now(dt.UTC) - when).days)


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def verified_text(verification: dict) -> str:
    """``Verified 3 days ago by Harbor Counseling``; ``Not verified for 120 days`` when
    stale; ``Never verified``."""
    days = days_since(verification.get("at"))
    if days is None:
        return "Never verified"
    if verification.get("stale"):
        return f"Not verified for {_days(days)}"
    by = f" by {verification['by']}" if verification.get("by") else ""
    return f"Verified {_days(days)} ago{by}"


def hidden_notice(verification: dict, hidden_after_days: int) -> str | None:
    """Why search does not show this listing (None when it does): not confirmed by its
    clinic within ``hidden_after_days``."""
    days = days_since(verification.get("at"))
    if days is not None and days <= hidden_after_days:
        return None
    why = ("its clinic has never confirmed it" if days is None
           else f"its clinic has not confirmed it for {_days(days)}, more than "
                f"{_days(hidden_after_days)}")
    return (f"This listing is hidden from search because {why}. The details may be out "
            "of date: check with the provider before you rely on them.")
