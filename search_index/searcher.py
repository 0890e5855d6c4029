"""Structured search over a ``ProviderTable``: filter, rank, page and count facets.

Everything here is vectorised numpy over the table's columns. Free text is
done by ``search_index.text`` beforehand and arrives as ``text_ids`` and
``text_scores``; this module intersects it with the structured filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ranking import WEIGHTS
from .reach import reach_mask
from .table import ProviderTable

SORTS = ("relevance", "distance", "fee", "availability")
DAY = 86400.0


@dataclass
class Criteria:
    """What a patient asks for, in vocabulary values (see ``referral.search`` for meanings)."""

    now: float
    roles: tuple = ()
    provider_types: tuple = ()
    modalities: tuple = ()
    concerns: tuple = ()
    suited_modalities: tuple = ()
    age_groups: tuple = ()
    languages: tuple = ()
    specialties: tuple = ()
    genders: tuple = ()
    insurance: tuple = ()
    point: tuple[float, float] | None = None
    radius_miles: float = 25.0
    state: str | None = None
    telehealth: bool = True
    in_person: bool = True
    max_fee: int | None = None
    sliding_scale: bool = False
    accepting_only: bool = True
    coordinated_only: bool = False
    include_stale: bool = False
    stale_after_days: int = 90
    hidden_after_days: int = 365
    text_ids: np.ndarray | None = None
    text_scores: np.ndarray | None = None
    sort: str = "relevance"
    offset: int = 0
    limit: int = 20


@dataclass
class Hits:
    """One page of matches and what the whole match set looks like."""

    ids: np.ndarray
    rows: np.ndarray
    distances: np.ndarray
    text_scores: np.ndarray
    stale: np.ndarray
    reported: np.ndarray
    total: int
    facets: dict = field(default_factory=dict)


def any_bits(table: ProviderTable, name: str, values, rows=None) -> np.ndarray:
    """Whether each row (all, or ``rows``) has any of ``values`` in a multi-valued field."""
    bits = table.bits(name, values)
    column = table.column(name) if rows is None else table.columns[name][rows]
    return (column & column.dtype.type(bits)) != 0


def _coded_in(table: ProviderTable, name: str, values) -> np.ndarray:
    codes = [table.codes[name][v] for v in values if v in table.codes[name]]
    column = table.column(name)
    if len(codes) == 1:
        return column == codes[0]
    return np.isin(column, np.array(codes, dtype=column.dtype))


def fits_budget(fee_min: np.ndarray, fee_max: np.ndarray, sliding: np.ndarray, budget: int,
                sliding_wanted: bool) -> np.ndarray:
    """The one budget rule: a listing fits when its **whole** fee range is within the budget
    (its highest fee, or its only fee, is at most it). A patient who asks for sliding-scale
    fees is also shown sliding-scale listings whose lowest fee is within it, since the scale
    is what brings the fee down. Listings without fees never fit a budget."""
    listed = fee_min >= 0
    highest = np.maximum(fee_min, fee_max)  # fee_max is -1 when not listed
    fits = listed & (highest <= budget)
    if sliding_wanted:
        fits |= listed & sliding & (fee_min <= budget)
    return fits


def structured_mask(table: ProviderTable, c: Criteria) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, distances)``: rows satisfying every structured filter, and their
    distances in miles from ``c.point`` (NaN where not computed)."""
    size = len(table)
    col = table.column
    mask = col("active").copy()
    verified = col("verified_at")
    if not c.include_stale:
        mask &= verified >= c.now - c.hidden_after_days * DAY
    if c.accepting_only:
        mask &= col("accepting_new_patients")
    if c.coordinated_only:
        mask &= col("accepts_coordinated_care")
    if c.roles:
        mask &= _coded_in(table, "role", c.roles)
    if c.provider_types:
        mask &= _coded_in(table, "provider_type", c.provider_types)
    if c.genders:
        mask &= _coded_in(table, "gender", c.genders)
    for name, values in (("modalities", c.modalities), ("age_groups", c.age_groups),
                         ("languages", c.languages), ("insurance", c.insurance),
                         ("specialties", c.specialties)):
        if values:
            mask &= any_bits(table, name, values)
    if c.concerns:
        treats = any_bits(table, "concerns", c.concerns)
        if c.suited_modalities:
            treats |= any_bits(table, "modalities", c.suited_modalities)
        mask &= treats
    if c.max_fee is not None:
        mask &= fits_budget(col("fee_min"), col("fee_max"), col("sliding_scale"), c.max_fee,
                            c.sliding_scale)
    if c.sliding_scale:
        mask &= col("sliding_scale")

    mask, distances = reach_mask(table, mask, c)
    if c.text_ids is not None:
        text_rows = table.rows_for_ids(c.text_ids)
        in_text = np.zeros(size, dtype=bool)
        in_text[text_rows[text_rows >= 0]] = True
        mask &= in_text
    return mask, distances


def relevance(table: ProviderTable, rows: np.ndarray, distances: np.ndarray,
              text_score: np.ndarray, c: Criteria) -> np.ndarray:
    """Relevance of each row: text, modality fit, concern, nearness and availability."""
    w = WEIGHTS
    score = np.zeros(len(rows))
    if c.text_ids is not None and len(text_score):
        top = text_score.max()
        if top > 0:
            score += w.text * text_score / top
    wanted = tuple(c.modalities) + tuple(c.suited_modalities)
    if wanted:
        score += w.modality * any_bits(table, "modalities", wanted, rows)
    if c.concerns:
        score += w.concern * any_bits(table, "concerns", c.concerns, rows)
    if c.point is not None:
        near = 1.0 - distances / max(c.radius_miles, 1e-9)
        score += w.nearness * np.nan_to_num(np.clip(near, 0.0, 1.0))
    wait = table.columns["wait_days"][rows].astype(np.float64)
    score += w.availability * np.where(
        wait >= 0, np.clip(1.0 - wait / w.wait_horizon_days, 0.0, 1.0), 0.0)
    return score


def freshness(table: ProviderTable, rows: np.ndarray, c: Criteria) -> tuple[np.ndarray, np.ndarray]:
    """``(stale, reported)`` of ``rows``: not verified within the stale period, and marked
    by patients' reports (``referral.reports``). The one place that says which listings
    rank after verified ones (``unverified``): every sort, the finder and pairs use it."""
    stale = ~(table.columns["verified_at"][rows] >= c.now - c.stale_after_days * DAY)
    return stale, table.columns["reported"][rows].copy()


def unverified(stale: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Listings that rank after verified ones: stale or reported, alike."""
    return stale | reported


def _order(primary: np.ndarray, stale: np.ndarray, rows: np.ndarray, want: int) -> np.ndarray:
    """Indexes of the first ``want`` entries by (unverified last, primary ascending, row)."""
    primary = np.nan_to_num(primary, nan=np.inf, posinf=np.inf)
    finite_max = 1e9
    quantized = np.where(np.isinf(primary), finite_max,
                         np.clip(np.round(primary * 1e4), -finite_max, finite_max)).astype(np.int64)
    key = (stale.astype(np.int64) << 62) | ((quantized + (1 << 34)) << 24) | (rows & 0xFFFFFF)
    if want < len(key):
        part = np.argpartition(key, want - 1)[:want]
        return part[np.argsort(key[part], kind="stable")]
    return np.argsort(key, kind="stable")


def search(table: ProviderTable, c: Criteria, with_facets: bool = True) -> Hits:
    """Filter, rank and page the table for ``c``."""
    if c.sort not in SORTS:
        raise ValueError(f"unknown sort {c.sort!r}")
    mask, distances = structured_mask(table, c)
    rows = np.flatnonzero(mask)
    total = len(rows)
    text_score = np.zeros(total)
    if c.text_ids is not None and total:
        scores = np.zeros(len(table))
        text_rows = table.rows_for_ids(c.text_ids)
        known = text_rows >= 0
        np.maximum.at(scores, text_rows[known], c.text_scores[known])
        text_score = scores[rows]
    row_distances = distances[rows]
    stale, reported = freshness(table, rows, c)
    if c.sort == "relevance":
        primary = -relevance(table, rows, row_distances, text_score, c)
    elif c.sort == "distance":
        primary = row_distances
    elif c.sort == "fee":
        fees = table.columns["fee_min"][rows].astype(np.float64)
        primary = np.where(fees >= 0, fees, np.inf)
    else:
        waits = table.columns["wait_days"][rows].astype(np.float64)
        primary = np.where(waits >= 0, waits, np.inf)
    want = min(total, c.offset + c.limit)
    page = (_order(primary, unverified(stale, reported), rows, want)[c.offset:want] if want
            else np.empty(0, np.int64))
    facets = facet_counts(table, rows) if with_facets else {}
    return Hits(ids=table.columns["id"][rows[page]], rows=rows[page],
                distances=row_distances[page], text_scores=text_score[page],
                stale=stale[page], reported=reported[page], total=total, facets=facets)


def facet_counts(table: ProviderTable, rows: np.ndarray) -> dict:
    """Counts per modality, provider type, telehealth, insurance and language of ``rows``."""
    telehealth = int(np.count_nonzero(table.columns["telehealth"][rows]))
    return {
        "modality": table.value_counts("modalities", rows),
        "provider_type": table.value_counts("provider_type", rows),
        "telehealth": {"true": telehealth, "false": len(rows) - telehealth},
        "insurance": table.value_counts("insurance", rows),
        "language": table.value_counts("languages", rows),
    }
