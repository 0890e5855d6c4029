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
from search_index.searcher import Criteria, relevance, search

from .errors import NotFound
from .models import Provider, utcnow
from .referrals import Responsiveness, completed_together, responsiveness
from .search import Understood, build_criteria, placement, rendered_listings
from .search_sync import SearchState
from .vocab import CONCERN_LABELS, CONCERN_MODALITIES, PAYERS

#: Candidates kept per side before pairing (pairs scored: at most its square).
CANDIDATES = 60
#: No provider appears in more than this many of the returned pairs.
MAX_PAIRS_PER_PROVIDER = 2
#: The most prescribers a therapist's finder ranks in full (with responsiveness).
FINDER_DEPTH = 200


def _side_criteria(base: Criteria, role: str, **changes) -> Criteria:
    return dataclasses.replace(base, roles=(role,), coordinated_only=True, accepting_only=True,
                               genders=(), concerns=(), suited_modalities=(), text_ids=None,
                               text_scores=None, sort="relevance", offset=0, **changes)


def _listings(state: SearchState, session, table, rows, dump_listing) -> dict[int, dict]:
    return rendered_listings(state, session, table.columns["id"][rows].tolist(),
                             table.columns["version"][rows].tolist(), dump_listing)


def _how_seen(role: str, reach: list[str], distance: float | None, state: str | None) -> str:
    if "in_person" in reach:
        if distance is None:
            return f"{role} sees you in person in {state}"
        return f"{role} sees you in person, {distance:.1f} miles away"
    return f"{role} sees you by telehealth, licensed in {state}"


def _responsiveness_words(figures: dict) -> str | None:
    if not figures["referrals_answered"] or figures["median_response_hours"] is None:
        return None
    share = figures["accepted_share"]
    return (f"Prescriber answers referrals in about {figures['median_response_hours']:.0f} hours"
            + (f" ({share:.0%} accepted)" if share is not None else ""))


def match_pairs(state: SearchState, session, params: dict,
                dump_listing: Callable[[Provider], dict], *, now: dt.datetime | None = None,
                stale_after_days: int = 90, hidden_after_days: int = 365) -> dict:
    """Ranked therapist + prescriber pairs for a patient's needs (validated ``params``)."""
    now = now or utcnow()
    connection = session.connection()
    with state.lock:
        table = state.refresh_table(connection)
        base, location = build_criteria(params, Understood(), now, stale_after_days,
                                        hidden_after_days)
        concerns = base.concerns
        required = base.modalities or tuple(dict.fromkeys(
            m for c in concerns for m in CONCERN_MODALITIES[c]))
        therapist_c = _side_criteria(base, "therapist", modalities=required, limit=CANDIDATES)
        prescriber_c = _side_criteria(
            base, "prescriber", modalities=(), limit=CANDIDATES,
            provider_types=(params["prescriber_type"],) if params.get("prescriber_type") else ())
        therapists = search(table, therapist_c, with_facets=False)
        prescribers = search(table, prescriber_c, with_facets=False)
        t_rows, p_rows = therapists.rows, prescribers.rows
        fit_t = relevance(table, t_rows, therapists.distances, np.zeros(len(t_rows)), therapist_c)
        fit_p = relevance(table, p_rows, prescribers.distances, np.zeros(len(p_rows)),
                          prescriber_c)
        columns = table.columns
        concern_bits = table.bits("concerns", concerns)
        t_ids, p_ids = columns["id"][t_rows], columns["id"][p_rows]
        t_clinic, p_clinic = columns["clinic_id"][t_rows], columns["clinic_id"][p_rows]
        t_fee, p_fee = columns["fee_min"][t_rows], columns["fee_min"][p_rows]
        t_lat, t_lon = columns["latitude"][t_rows], columns["longitude"][t_rows]
        p_lat, p_lon = columns["latitude"][p_rows], columns["longitude"][p_rows]
        t_concern = (columns["concerns"][t_rows] & columns["concerns"].dtype.type(concern_bits)) != 0
        p_concern = (columns["concerns"][p_rows] & columns["concerns"].dtype.type(concern_bits)) != 0
        t_in = ~np.isnan(therapists.distances) & (therapists.distances <= base.radius_miles)
        p_in = ~np.isnan(prescribers.distances) & (prescribers.distances <= base.radius_miles)

    p_figures = responsiveness(p_ids.tolist())
    together = completed_together(t_ids.tolist(), p_ids.tolist())
    resp = np.array([p_figures.get(pid).score() if pid in p_figures else 0.5
                     for pid in p_ids.tolist()])

    # Pair features over the candidates only: len(t) x len(p).
    score = (fit_t + 0.3 * t_concern - 1.0 * therapists.stale)[:, None] \
        + (fit_p + 0.3 * p_concern - 1.0 * prescribers.stale + 1.0 * resp)[None, :]
    same_clinic = (t_clinic[:, None] == p_clinic[None, :]) & (t_clinic[:, None] >= 0)
    score += 0.5 * same_clinic
    shared = np.zeros((len(t_rows), len(p_rows)))
    t_index = {pid: i for i, pid in enumerate(t_ids.tolist())}
    p_index = {pid: j for j, pid in enumerate(p_ids.tolist())}
    for (tid, pid), count in together.items():
        shared[t_index[tid], p_index[pid]] = count
    score += 0.3 * np.minimum(shared, 3)
    apart = np.full((len(t_rows), len(p_rows)), np.nan)
    for i in range(len(t_rows)):
        if t_in[i] and not np.isnan(t_lat[i]):
            apart[i] = lambert_miles(t_lat[i], t_lon[i], p_lat, p_lon)
    both_in_person = t_in[:, None] & p_in[None, :]
    close = both_in_person & (apart <= 10)
    score += np.where(close, 0.4 * (1 - np.nan_to_num(apart) / 10), 0.0)
    if params.get("max_combined_fee") is not None:
        combined = t_fee[:, None].astype(np.int64) + p_fee[None, :].astype(np.int64)
        allowed = (t_fee[:, None] >= 0) & (p_fee[None, :] >= 0) & \
            (combined <= params["max_combined_fee"])
        score = np.where(allowed, score, -np.inf)

    limit = params.get("limit", 10)
    chosen = _diverse_top(score, limit)
    listings = {}
    if chosen:
        listings = _listings(state, session, table,
                             np.concatenate([t_rows, p_rows]), dump_listing)
    pairs = []
    for i, j in chosen:
        therapist = listings.get(int(t_ids[i]))
        prescriber = listings.get(int(p_ids[j]))
        if therapist is None or prescriber is None:
            continue
        t_item = _side_item(therapist, base, bool(therapists.stale[i]))
        p_item = _side_item(prescriber, base, bool(prescribers.stale[j]))
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
    return (figures.get(prescriber_id) or Responsiveness()).as_dict()


def _side_item(listing: dict, criteria: Criteria, stale: bool) -> dict:
    distance, reach = placement(listing, criteria)
    return {**listing, "distance_miles": round(distance, 2) if distance is not None else None,
            "reach": reach, "stale": stale}


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
    reasons = ["Both coordinate care with each other and are taking new patients"]
    offered = [m for m in therapist["modalities"] if m in required]
    if offered and concerns:
        reasons.append(f"Therapist offers {', '.join(offered)}, suited to "
                       + ", ".join(CONCERN_LABELS[c] for c in concerns))
    elif offered:
        reasons.append(f"Therapist offers {', '.join(offered)}")
    reasons.append(_how_seen("Therapist", therapist["reach"], therapist["distance_miles"],
                             criteria.state))
    reasons.append(_how_seen("Prescriber", prescriber["reach"], prescriber["distance_miles"],
                             criteria.state))
    if criteria.age_groups:
        reasons.append("Prescriber sees " + ", ".join(
            a.replace("_", " ") + "s" for a in criteria.age_groups))
    answered = _responsiveness_words(prescriber["responsiveness"])
    if answered:
        reasons.append(answered)
    if same_clinic and therapist.get("clinic"):
        reasons.append(f"Same clinic: {therapist['clinic']['name']}")
    if shared:
        reasons.append(f"{shared} completed referral{'s' if shared > 1 else ''} together")
    if close and not same_clinic:
        reasons.append(f"Practices {apart:.1f} miles apart")
    if "telehealth" in therapist["reach"] and "telehealth" in prescriber["reach"]:
        reasons.append("Both offer telehealth")
    payers = [PAYERS[p][0] for p in criteria.insurance
              if p in therapist["insurance"] and p in prescriber["insurance"]]
    if payers:
        reasons.append(f"Both accept {', '.join(payers)}")
    if params.get("max_combined_fee") is not None or criteria.max_fee is not None:
        reasons.append(f"Fees from ${therapist['fee_min']} (therapist) + "
                       f"${prescriber['fee_min']} (prescriber) = "
                       f"${therapist['fee_min'] + prescriber['fee_min']}")
    return reasons


def prescribers_for_therapist(state: SearchState, session, therapist_id: int, params: dict,
                              dump_listing: Callable[[Provider], dict], *,
                              now: dt.datetime | None = None, stale_after_days: int = 90,
                              hidden_after_days: int = 365) -> dict:
    """Prescribers a therapist can refer a patient to, ranked with their responsiveness."""
    now = now or utcnow()
    therapist = session.get(Provider, therapist_id)
    if therapist is None or not therapist.active or therapist.role != "therapist":
        raise NotFound(f"No active therapist listing has id {therapist_id}.")
    connection = session.connection()
    with state.lock:
        table = state.refresh_table(connection)
        base, location = build_criteria(params, Understood(), now, stale_after_days,
                                        hidden_after_days)
        criteria = _side_criteria(base, "prescriber", modalities=(), limit=FINDER_DEPTH)
        hits = search(table, criteria, with_facets=False)
        rows = hits.rows
        fit = relevance(table, rows, hits.distances, np.zeros(len(rows)), criteria)
        columns = table.columns
        ids = columns["id"][rows]
        clinics = columns["clinic_id"][rows]
        lats, lons = columns["latitude"][rows], columns["longitude"][rows]
    figures = responsiveness(ids.tolist())
    together = completed_together([therapist.id], ids.tolist())
    resp = np.array([figures[pid].score() if pid in figures else 0.5 for pid in ids.tolist()])
    shared = np.array([together.get((therapist.id, pid), 0) for pid in ids.tolist()])
    same_clinic = (clinics == (therapist.clinic_id if therapist.clinic_id else -2))
    apart = (lambert_miles(therapist.latitude, therapist.longitude, lats, lons)
             if therapist.latitude is not None else np.full(len(rows), np.nan))
    close = np.nan_to_num(apart, nan=np.inf) <= 10
    score = (fit - 1.0 * hits.stale + 1.0 * resp + 0.5 * same_clinic
             + 0.3 * np.minimum(shared, 3) + np.where(close, 0.3 * (1 - np.nan_to_num(apart) / 10),
                                                      0.0))
    order = np.argsort(-score, kind="stable")
    page, per_page = params.get("page", 1), params.get("per_page", 20)
    window = order[(page - 1) * per_page: page * per_page]
    listings = _listings(state, session, table, rows[window], dump_listing)
    items = []
    for index in window.tolist():
        listing = listings.get(int(ids[index]))
        if listing is None:
            continue
        item = _side_item(listing, base, bool(hits.stale[index]))
        item["responsiveness"] = _figures(figures, int(ids[index]))
        reasons = [_how_seen("Prescriber", item["reach"], item["distance_miles"], base.state)
                   .replace("sees you", "can see the patient")]
        words = _responsiveness_words(item["responsiveness"])
        if words:
            reasons.append(words)
        if same_clinic[index]:
            reasons.append("Same clinic as the therapist")
        if shared[index]:
            reasons.append(f"{int(shared[index])} completed referrals with this therapist")
        if close[index]:
            reasons.append(f"Practice {apart[index]:.1f} miles from the therapist's")
        item["reasons"] = reasons
        item["score"] = round(float(score[index]), 3)
        items.append(item)
    return {"therapist_id": therapist.id, "items": items, "total": hits.total, "page": page,
            "per_page": per_page, "interpreted": {"location": location}}
