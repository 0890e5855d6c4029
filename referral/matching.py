"""Therapist + prescriber pairs for a patient, and prescribers for a referring therapist.

Never the whole cross product: each side is first narrowed by the index to its
best candidates under the hard constraints (both accept coordinated care and new
patients, each can see the patient in person within the radius or by telehealth
licensed in the patient's state, the therapist offers a modality suited to the
concern, the prescriber serves the patient's age group, cost and insurance hold
for both), then only those candidates are paired and scored, vectorised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import numpy as np

from search_index.distance import lambert_miles
from search_index.ranking import WEIGHTS
from search_index.searcher import Criteria, SearchMemo

from .errors import NotFound
from .i18n import N_, gettext
from .limits import FINDER_DEPTH, MIN_PUBLIC_REFERRALS
from .listing_rules import verification
from .models import Provider, utcnow
from .referrals import Responsiveness, completed_together, responsiveness
from .search import Understood, build_criteria, placement
from .search_service import Candidates, SearchService
from .vocab import AGE_GROUP_PLURALS, CONCERN_LABELS, CONCERN_MODALITIES, PAYERS, modality_name
from .wording import pair_fee_text

#: Candidates kept per side before pairing (pairs scored: at most its square).
CANDIDATES = 60
#: No provider appears in more than this many of the returned pairs.
MAX_PAIRS_PER_PROVIDER = 2


def _side_criteria(base: Criteria, role: str, **changes) -> Criteria:
    return dataclasses.replace(base, roles=(role,), coordinated_only=True, accepting_only=True,
                               genders=(), concerns=(), suited_modalities=(), text_ids=None,
                               text_scores=None, sort="relevance", offset=0, **changes)


def _listings(service: SearchService, session, sides: list[Candidates], dump_listing,
              picks: list[np.ndarray] | None = None) -> dict[int, dict]:
    """Rendered listings of the candidates (or of the picked indexes of each side)."""
    ids, versions = [], []
    for number, side in enumerate(sides):
        chosen = picks[number] if picks is not None else slice(None)
        ids += side.ids[chosen].tolist()
        versions += side.versions[chosen].tolist()
    return service.listings(session, ids, versions, dump_listing)


def _responsiveness_scores(figures: dict, ids: np.ndarray) -> np.ndarray:
    return np.array([figures[pid].score() if pid in figures else 0.5 for pid in ids.tolist()])


def _close_practices(apart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(close, bonus)``: practices within ``close_practice_miles`` of each other, and their
    bonus (full next door, falling to nothing at that distance)."""
    w = WEIGHTS
    close = np.nan_to_num(apart, nan=np.inf) <= w.close_practice_miles
    bonus = np.where(close, w.close_practices * (1 - np.nan_to_num(apart) / w.close_practice_miles),
                     0.0)
    return close, bonus


def _highest_fee(side: Candidates) -> np.ndarray:
    """Each candidate's highest listed fee (its only fee when it lists one; -1 for none)."""
    return np.maximum(side.fee_min, side.fee_max)


def _in_radius(side: Candidates, radius: float) -> np.ndarray:
    return ~np.isnan(side.distances) & (side.distances <= radius)


#: How one side can see the patient, per who it is and whom the sentence addresses:
#: ``(side, kind) -> sentence`` (``patient``: a therapist reads it about their patient).
_HOW_SEEN = {
    ("therapist", "in_state"): N_("Therapist sees you in person in %(state)s"),
    ("therapist", "near"): N_("Therapist sees you in person, %(miles)s miles away"),
    ("therapist", "telehealth"): N_("Therapist sees you by telehealth, licensed in %(state)s"),
    ("prescriber", "in_state"): N_("Prescriber sees you in person in %(state)s"),
    ("prescriber", "near"): N_("Prescriber sees you in person, %(miles)s miles away"),
    ("prescriber", "telehealth"): N_("Prescriber sees you by telehealth, licensed in %(state)s"),
    ("patient", "in_state"): N_("Prescriber can see the patient in person in %(state)s"),
    ("patient", "near"): N_("Prescriber can see the patient in person, %(miles)s miles away"),
    ("patient", "telehealth"): N_("Prescriber can see the patient by telehealth, licensed in "
                                  "%(state)s"),
}


def _how_seen(side: str, reach: list[str], distance: float | None, state: str | None) -> str:
    if "in_person" in reach:
        kind = "in_state" if distance is None else "near"
    else:
        kind = "telehealth"
    miles = None if distance is None else f"{distance:.1f}"
    return gettext(_HOW_SEEN[side, kind], state=state, miles=miles)


def _responsiveness_words(figures: dict) -> str | None:
    if not figures["referrals_answered"] or figures["median_response_hours"] is None:
        return None
    share = figures["accepted_share"]
    hours = f"{figures['median_response_hours']:.0f}"
    if share is None:
        return gettext("Prescriber answers referrals in about %(hours)s hours", hours=hours)
    return gettext("Prescriber answers referrals in about %(hours)s hours (%(share)s accepted)",
                   hours=hours, share=f"{share:.0%}")


def match_pairs(service: SearchService, session, params: dict,
                dump_listing: Callable[[Provider], dict], *, now: dt.datetime | None = None,
                stale_after_days: int = 90, hidden_after_days: int = 365) -> dict:
    """Ranked therapist + prescriber pairs for a patient's needs (validated ``params``)."""
    now = now or utcnow()
    w = WEIGHTS
    base, location = build_criteria(params, Understood(), now, stale_after_days,
                                    hidden_after_days)
    concerns = base.concerns
    required = base.modalities or tuple(dict.fromkeys(
        m for c in concerns for m in CONCERN_MODALITIES[c]))
    therapist_c = _side_criteria(base, "therapist", modalities=required, limit=CANDIDATES)
    prescriber_c = _side_criteria(
        base, "prescriber", modalities=(), limit=CANDIDATES,
        provider_types=(params["prescriber_type"],) if params.get("prescriber_type") else ())
    # the two sides share the patient's filters and reach: one memo computes them once
    memo = SearchMemo()
    therapists = service.candidates(session, therapist_c, concerns, memo)
    prescribers = service.candidates(session, prescriber_c, concerns, memo)
    t_ids, p_ids = therapists.ids, prescribers.ids

    p_figures = responsiveness(p_ids.tolist())
    together = completed_together(t_ids.tolist(), p_ids.tolist())
    resp = _responsiveness_scores(p_figures, p_ids)

    # Pair features over the candidates only: len(t) x len(p).
    score = (therapists.fit + w.pair_concern * therapists.treats_concern
             - w.stale * therapists.unverified)[:, None] \
        + (prescribers.fit + w.pair_concern * prescribers.treats_concern
           - w.stale * prescribers.unverified + w.responsiveness * resp)[None, :]
    t_clinic, p_clinic = therapists.clinic_ids, prescribers.clinic_ids
    same_clinic = (t_clinic[:, None] == p_clinic[None, :]) & (t_clinic[:, None] >= 0)
    score += w.same_clinic * same_clinic
    shared = np.zeros((len(therapists), len(prescribers)))
    t_index = {pid: i for i, pid in enumerate(t_ids.tolist())}
    p_index = {pid: j for j, pid in enumerate(p_ids.tolist())}
    for (tid, pid), count in together.items():
        shared[t_index[tid], p_index[pid]] = count
    score += w.shared_history * np.minimum(shared, w.shared_history_cap)
    t_in = _in_radius(therapists, base.radius_miles)
    p_in = _in_radius(prescribers, base.radius_miles)
    apart = np.full((len(therapists), len(prescribers)), np.nan)
    for i in range(len(therapists)):
        if t_in[i] and not np.isnan(therapists.latitude[i]):
            apart[i] = lambert_miles(therapists.latitude[i], therapists.longitude[i],
                                     prescribers.latitude, prescribers.longitude)
    close, bonus = _close_practices(apart)
    close &= t_in[:, None] & p_in[None, :]
    score += np.where(close, bonus, 0.0)
    if params.get("max_combined_fee") is not None:
        # The same rule as one listing's budget: both whole ranges together within it.
        t_fee, p_fee = _highest_fee(therapists), _highest_fee(prescribers)
        combined = t_fee[:, None].astype(np.int64) + p_fee[None, :].astype(np.int64)
        allowed = (t_fee[:, None] >= 0) & (p_fee[None, :] >= 0) & \
            (combined <= params["max_combined_fee"])
        score = np.where(allowed, score, -np.inf)

    limit = params.get("limit", 10)
    chosen = _diverse_top(score, limit)
    listings = {}
    if chosen:  # rendered: the chosen pairs' listings only, not every candidate
        picked = [np.unique([i for i, _ in chosen]), np.unique([j for _, j in chosen])]
        listings = _listings(service, session, [therapists, prescribers], dump_listing,
                             picked)
    pairs = []
    for i, j in chosen:
        therapist = listings.get(int(t_ids[i]))
        prescriber = listings.get(int(p_ids[j]))
        if therapist is None or prescriber is None:
            continue
        t_item = _side_item(therapist, base, bool(therapists.stale[i]),
                            bool(therapists.reported[i]))
        p_item = _side_item(prescriber, base, bool(prescribers.stale[j]),
                            bool(prescribers.reported[j]))
        p_item["responsiveness"] = _figures(p_figures, int(p_ids[j]))
        reasons = _pair_reasons(t_item, p_item, base, required, concerns,
                                bool(same_clinic[i, j]), int(shared[i, j]), apart[i, j],
                                bool(close[i, j]), params)
        pairs.append({"therapist": t_item, "prescriber": p_item,
                      "score": round(float(score[i, j]), 3), "reasons": reasons})
    return {"pairs": pairs, "therapist_candidates": therapists.total,
            "prescriber_candidates": prescribers.total,
            "interpreted": {"location": location, "therapist_modalities": list(required),
                            "concerns": list(concerns)}}


def _figures(figures: dict, prescriber_id: int) -> dict:
    """Public responsiveness figures: shown only from ``MIN_PUBLIC_REFERRALS`` answered or
    expired referrals on (before that every figure is null); ranking uses them all."""
    found = figures.get(prescriber_id) or Responsiveness()
    if found.answered + found.expired < MIN_PUBLIC_REFERRALS:
        return {"referrals_answered": None, "accepted_share": None,
                "median_response_hours": None}
    return found.as_dict()


def _side_item(listing: dict, criteria: Criteria, stale: bool, reported: bool) -> dict:
    distance, reach = placement(listing, criteria)
    return {**listing, "distance_miles": round(distance, 2) if distance is not None else None,
            "reach": reach, "stale": stale,
            "verification": verification(listing["last_verified_at"], listing["clinic"], stale,
                                         reported)}


def _diverse_top(score: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Best pairs first, no provider in more than ``MAX_PAIRS_PER_PROVIDER`` of them."""
    if score.size == 0:
        return []
    flat = np.argsort(-score, axis=None, kind="stable")
    used_t: dict[int, int] = {}
    used_p: dict[int, int] = {}
    chosen = []
    for index in flat.tolist():
        i, j = divmod(index, score.shape[1])
        if not np.isfinite(score[i, j]):
            break
        if used_t.get(i, 0) >= MAX_PAIRS_PER_PROVIDER or used_p.get(j, 0) >= MAX_PAIRS_PER_PROVIDER:
            continue
        used_t[i] = used_t.get(i, 0) + 1
        used_p[j] = used_p.get(j, 0) + 1
        chosen.append((i, j))
        if len(chosen) == limit:
            break
    return chosen


def _pair_reasons(therapist: dict, prescriber: dict, criteria: Criteria, required, concerns,
                  same_clinic: bool, shared: int, apart: float, close: bool,
                  params: dict) -> list[str]:
    # Shared referral history ranks a pair but is never named (it is about patients).
    reasons = [gettext("Both coordinate care and are taking new patients")]
    offered = [m for m in therapist["modalities"] if m in required]
    names = ", ".join(modality_name(m) for m in offered)
    if offered and concerns:
        reasons.append(gettext("Therapist offers %(approaches)s, suited to %(concerns)s",
                               approaches=names, concerns=", ".join(
                                   gettext(CONCERN_LABELS[c]) for c in concerns)))
    elif offered:
        reasons.append(gettext("Therapist offers %(approaches)s", approaches=names))
    reasons.append(_how_seen("therapist", therapist["reach"], therapist["distance_miles"],
                             criteria.state))
    reasons.append(_how_seen("prescriber", prescriber["reach"], prescriber["distance_miles"],
                             criteria.state))
    if criteria.age_groups:
        reasons.append(gettext("Prescriber sees %(ages)s", ages=", ".join(
            gettext(AGE_GROUP_PLURALS[a]) for a in criteria.age_groups)))
    answered = _responsiveness_words(prescriber["responsiveness"])
    if answered:
        reasons.append(answered)
    if same_clinic and therapist.get("clinic"):
        reasons.append(gettext("Same clinic: %(clinic)s", clinic=therapist["clinic"]["name"]))
    if close and not same_clinic:
        reasons.append(gettext("Practices %(miles)s miles apart", miles=f"{apart:.1f}"))
    if "telehealth" in therapist["reach"] and "telehealth" in prescriber["reach"]:
        reasons.append(gettext("Both offer telehealth"))
    payers = [PAYERS[p][0] for p in criteria.insurance
              if p in therapist["insurance"] and p in prescriber["insurance"]]
    if payers:
        reasons.append(gettext("Both accept %(insurance)s", insurance=", ".join(payers)))
    fees = pair_fee_text(therapist, prescriber)
    if fees and (params.get("max_combined_fee") is not None or criteria.max_fee is not None):
        reasons.append(fees)
    return reasons


def prescribers_for_therapist(service: SearchService, session, therapist_id: int,
                              params: dict, dump_listing: Callable[[Provider], dict], *,
                              now: dt.datetime | None = None, stale_after_days: int = 90,
                              hidden_after_days: int = 365) -> dict:
    """Prescribers a therapist can refer a patient to, ranked with their responsiveness."""
    now = now or utcnow()
    w = WEIGHTS
    therapist = session.get(Provider, therapist_id)
    if therapist is None or not therapist.active or therapist.role != "therapist":
        raise NotFound(f"No active therapist listing has id {therapist_id}.")
    base, location = build_criteria(params, Understood(), now, stale_after_days,
                                    hidden_after_days)
    criteria = _side_criteria(base, "prescriber", modalities=(), limit=FINDER_DEPTH)
    found = service.candidates(session, criteria)
    ids = found.ids
    figures = responsiveness(ids.tolist())
    together = completed_together([therapist.id], ids.tolist())
    resp = _responsiveness_scores(figures, ids)
    shared = np.array([together.get((therapist.id, pid), 0) for pid in ids.tolist()])
    same_clinic = (found.clinic_ids == (therapist.clinic_id if therapist.clinic_id else -2))
    apart = (lambert_miles(therapist.latitude, therapist.longitude, found.latitude,
                           found.longitude)
             if therapist.latitude is not None else np.full(len(found), np.nan))
    close, bonus = _close_practices(apart)
    score = (found.fit - w.stale * found.unverified + w.responsiveness * resp
             + w.same_clinic * same_clinic
             + w.shared_history * np.minimum(shared, w.shared_history_cap) + bonus)
    order = np.argsort(-score, kind="stable")
    page, per_page = params.get("page", 1), params.get("per_page", 20)
    window = order[(page - 1) * per_page: page * per_page]
    listings = _listings(service, session, [found], dump_listing, [window])
    items = []
    for index in window.tolist():
        listing = listings.get(int(ids[index]))
        if listing is None:
            continue
        item = _side_item(listing, base, bool(found.stale[index]), bool(found.reported[index]))
        item["responsiveness"] = _figures(figures, int(ids[index]))
        reasons = [_how_seen("patient", item["reach"], item["distance_miles"], base.state)]
        words = _responsiveness_words(item["responsiveness"])
        if words:
            reasons.append(words)
        if same_clinic[index]:
            reasons.append(gettext("Same clinic as the therapist"))
        if close[index]:
            reasons.append(gettext("Practice %(miles)s miles from the therapist's",
                                   miles=f"{apart[index]:.1f}"))
        item["reasons"] = reasons
        item["score"] = round(float(score[index]), 3)
        items.append(item)
    return {"therapist_id": therapist.id, "items": items, "total": found.total, "page": page,
            "per_page": per_page, "interpreted": {"location": location}}
