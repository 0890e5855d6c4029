"""Facts about a listing in plain words, as cards, reasons and pairs show them.

One place for the wording of fees (an honest range, never only the lowest fee),
of how a provider can see the patient and of how fresh a listing is, so the search
page, the provider page and the pairs never disagree. The words follow the request's
language (``referral.i18n``: English for the API, the patient's choice on the pages).
"""

from __future__ import annotations

import datetime as dt

from .i18n import N_, gettext, money, ngettext


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
    text = gettext("Fees %(fees)s per session", fees=fees) if fees else gettext("Fees not listed")
    return text + (gettext("; sliding scale") if listing.get("sliding_scale") else "")


def pair_fee_text(therapist: dict, prescriber: dict) -> str | None:
    """What a first visit to each of a pair costs together, as a range:
    ``Fees together $95-$385 (therapist $35-$185, prescriber $60-$200)``."""
    sides = [(s.get("fee_min"), s.get("fee_max")) for s in (therapist, prescriber)]
    if any(low is None and high is None for low, high in sides):
        return None
    lows = [low if low is not None else high for low, high in sides]
    highs = [high if high is not None else low for low, high in sides]
    return gettext("Fees together %(both)s (therapist %(therapist)s, prescriber %(prescriber)s)",
                   both=fee_range(sum(lows), sum(highs)), therapist=fee_range(*sides[0]),
                   prescriber=fee_range(*sides[1]))


def reach_badges(listing: dict, state: str | None) -> list[str]:
    """How a provider in search results can see this patient, as badges: ``In person`` only
    when within the patient's radius (or state), ``Telehealth (licensed in NY)`` when
    licensed in the patient's state. Without a patient location: what the listing offers."""
    if "reach" not in listing or (state is None and not listing["reach"]):
        offered = []
        if listing.get("in_person"):
            where = ", ".join(filter(None, (listing.get("city"), listing.get("state"))))
            offered.append(gettext("In person (%(where)s)", where=where) if where
                           else gettext("In person"))
        if listing.get("telehealth"):
            licensed = ", ".join(listing.get("licensed_states") or ())
            offered.append(gettext("Telehealth (licensed in %(states)s)", states=licensed)
                           if licensed else gettext("Telehealth"))
        return offered
    badges = []
    if "in_person" in listing["reach"]:
        badges.append(gettext("In person"))
    if "telehealth" in listing["reach"]:
        badges.append(gettext("Telehealth (licensed in %(states)s)", states=state))
    return badges


# ---------------------------------------------------------------------------
# Freshness: the one wording of how current a listing is (search cards, the provider
# page, the clinic pages; the API gives the same facts as ``verification``).

#: What a reported listing says (``referral.reports``): on its page, and on its cards
#: (translated where shown: ``gettext(REPORTED_NOTICE)``).
REPORTED_NOTICE = N_("Patients reported that this listing may be out of date.")
REPORTED_BADGE = N_("Reported out of date")


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
    return ngettext("%(num)s day", "%(num)s days", count)


def verified_text(verification: dict) -> str:
    """``Verified 3 days ago by Harbor Counseling``; ``Not verified for 120 days`` when
    stale; ``Never verified``."""
    days = days_since(verification.get("at"))
    if days is None:
        return gettext("Never verified")
    if verification.get("stale"):
        return gettext("Not verified for %(days)s", days=_days(days))
    if verification.get("by"):
        return gettext("Verified %(days)s ago by %(clinic)s", days=_days(days),
                       clinic=verification["by"])
    return gettext("Verified %(days)s ago", days=_days(days))


def hidden_notice(verification: dict, hidden_after_days: int) -> str | None:
    """Why search does not show this listing (None when it does): not confirmed by its
    clinic within ``hidden_after_days``."""
    days = days_since(verification.get("at"))
    if days is not None and days <= hidden_after_days:
        return None
    if days is None:
        why = gettext("This listing is hidden from search because its clinic has never "
                      "confirmed it.")
    else:
        why = gettext("This listing is hidden from search because its clinic has not "
                      "confirmed it for %(days)s, more than %(limit)s.", days=_days(days),
                      limit=_days(hidden_after_days))
    return why + " " + gettext("The details may be out of date: check with the provider "
                               "before you rely on them.")
