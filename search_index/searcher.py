"""Structured search over a ``ProviderTable``: filter, rank, page and count facets.

Everything here is vectorised numpy over the table's columns. Free text is
done by ``search_index.text`` beforehand and arrives as ``text_ids`` and
``text_scores``; this module intersects it with the structured filters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np

from .ranking import WEIGHTS
from .reach import reach_mask
from .table import ProviderTable, gather

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
    column = table.column(name) if rows is None else gather(table.columns[name], rows)
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


def _treats(table: ProviderTable, concerns, suited) -> np.ndarray:
    treats = any_bits(table, "concerns", concerns)
    if suited:
        treats |= any_bits(table, "modalities", suited)
    return treats


def _filters(table: ProviderTable, c: Criteria) -> list[tuple[tuple, Callable[[], np.ndarray]]]:
    """Every structured filter of ``c`` but reach and text, as ``(key, compute)``: the key
    names the filter with every value it depends on, ``compute()`` gives its mask over the
    whole table. Listings must pass all of them."""
    col = table.column
    found: list[tuple[tuple, Callable[[], np.ndarray]]] = [(("listed",), partial(col, "active"))]
    if not c.include_stale:
        since = c.now - c.hidden_after_days * DAY
        found.append((("verified_since", since), lambda: col("verified_at") >= since))
    if c.accepting_only:
        found.append((("accepting",), partial(col, "accepting_new_patients")))
    if c.coordinated_only:
        found.append((("coordinated",), partial(col, "accepts_coordinated_care")))
    for name, values in (("role", c.roles), ("provider_type", c.provider_types),
                         ("gender", c.genders)):
        if values:
            found.append(((name, tuple(values)), partial(_coded_in, table, name, values)))
    for name, values in (("modalities", c.modalities), ("age_groups", c.age_groups),
                         ("languages", c.languages), ("insurance", c.insurance),
                         ("specialties", c.specialties)):
        if values:
            found.append(((name, tuple(values)), partial(any_bits, table, name, values)))
    if c.concerns:
        found.append((("concerns", tuple(c.concerns), tuple(c.suited_modalities)),
                      partial(_treats, table, c.concerns, c.suited_modalities)))
    if c.max_fee is not None:
        found.append((("budget", c.max_fee, c.sliding_scale), partial(
            fits_budget, col("fee_min"), col("fee_max"), col("sliding_scale"), c.max_fee,
            c.sliding_scale)))
    if c.sliding_scale:
        found.append((("sliding_scale",), partial(col, "sliding_scale")))
    return found


def _passing(table, c: Criteria) -> np.ndarray:
    """The rows of ``table`` passing every filter of ``_filters``: a new boolean mask."""
    mask = None
    for _, compute in _filters(table, c):
        if mask is None:
            mask = compute().copy()
        else:
            mask &= compute()
    return mask


def _pack(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as 64-bit words of bits (zero bits past its end)."""
    packed = np.packbits(mask)
    padding = -len(packed) % 8
    if padding:
        packed = np.concatenate([packed, np.zeros(padding, dtype=np.uint8)])
    return packed.view(np.uint64)


class SearchMemo:
    """What the several questions of one patient search have in common.

    A search with no results also counts a dozen relaxed versions of itself, each
    differing from it in one or two filters; with a memo each filter's mask over the
    table is computed once (the answer's own search keeps them as computed, the counts
    as bits, so combining a dozen costs little), and so are each free-text search and
    the reach rule's masks that depend on the patient alone. Results are exactly those
    without a memo (``tests/search_index/test_memo.py`` compares them). One memo serves
    one search: it holds a few masks per filter, and forgets them when the table changes
    under it (``ProviderTable.changes``).
    """

    def __init__(self) -> None:
        self._table_state: tuple | None = None
        self._masks: dict[tuple, np.ndarray] = {}
        self._packed: dict[tuple, np.ndarray] = {}
        self._reach_parts: dict[tuple, np.ndarray] = {}
        self._remembered: dict[tuple, object] = {}

    def _for(self, table: ProviderTable) -> None:
        state = (id(table), table.size, table.position, table.changes)
        if state != self._table_state:
            self._table_state = state
            self._masks.clear()
            self._packed.clear()
            self._reach_parts.clear()

    def remember(self, key: tuple, compute: Callable[[], object]):
        """``compute()``, once per ``key`` for this memo (free-text results, say)."""
        if key not in self._remembered:
            self._remembered[key] = compute()
        return self._remembered[key]

    def _mask(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        found = self._masks.get(key)
        if found is None:
            found = self._masks[key] = compute()
        return found

    def _bits(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        found = self._packed.get(key)
        if found is None:
            found = self._packed[key] = _pack(self._mask(key, compute))
        return found

    def filtered(self, table: ProviderTable, c: Criteria) -> np.ndarray:
        """The rows passing every filter of ``_filters``: a new boolean mask."""
        self._for(table)
        mask = None
        for key, compute in _filters(table, c):
            if mask is None:
                mask = self._mask(key, compute).copy()
            else:
                mask &= self._mask(key, compute)
        return mask

    def reach(self, table: ProviderTable, mask: np.ndarray, c: Criteria,
              with_distances: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``reach_mask`` with the masks that depend on the patient alone remembered."""
        self._for(table)
        return reach_mask(table, mask, c, self._reach_parts, with_distances)

    def count(self, table: ProviderTable, c: Criteria) -> int:
        """How many rows pass every structured filter, reach and text of ``c``: the
        filters' bits combined, then the reach rule over the rows they leave."""
        self._for(table)
        parts = [self._bits(key, compute) for key, compute in _filters(table, c)]
        if c.text_ids is not None:
            # Keyed by the array itself (kept alive here, so its id is not reused).
            self._remembered.setdefault(("text_ids", id(c.text_ids)), c.text_ids)
            parts.append(self._bits(("text_ids", id(c.text_ids)),
                                    lambda: _text_mask(table, c.text_ids)))
        filtered = np.unpackbits(_combined(parts).view(np.uint8), count=len(table))
        return int(np.count_nonzero(self.reach(table, filtered.view(np.bool_), c,
                                               with_distances=False)[0]))


def _combined(parts: list[np.ndarray]) -> np.ndarray:
    """The AND of packed masks."""
    words = parts[0].copy()
    for part in parts[1:]:
        words &= part
    return words


def _text_mask(table: ProviderTable, text_ids: np.ndarray) -> np.ndarray:
    text_rows = table.rows_for_ids(text_ids)
    in_text = np.zeros(len(table), dtype=bool)
    in_text[text_rows[text_rows >= 0]] = True
    return in_text


def structured_mask(table: ProviderTable, c: Criteria,
                    memo: SearchMemo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, distances)``: rows satisfying every structured filter, and their
    distances in miles from ``c.point`` (NaN where not computed). With ``memo``, the
    filters' masks are shared with the search's other questions (same results)."""
    mask, distances = _structured(table, c, memo)
    return mask, np.full(len(table), np.nan) if distances is None else distances


def _structured(table: ProviderTable, c: Criteria,
                memo: SearchMemo | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``structured_mask`` with no distances at all (None) when no row can have one (no
    patient's point or no care in person): a national search does not fill a million."""
    with_distances = c.point is not None and c.in_person
    if memo is not None:
        mask, distances = memo.reach(table, memo.filtered(table, c), c, with_distances)
    else:
        mask, distances = reach_mask(table, _passing(table, c), c,
                                     with_distances=with_distances)
    if c.text_ids is not None:
        mask &= _text_mask(table, c.text_ids)
    return mask, distances


def count_matches(table: ProviderTable, c: Criteria, memo: SearchMemo | None = None) -> int:
    """How many listings ``search`` would find for ``c`` (its ``total``), not ranked."""
    if memo is not None and _text_candidates(table, c) is None:
        return memo.count(table, c)
    return len(matching_rows(table, c)[0])


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
    # The masks as floats first: numpy multiplies a float by a boolean array through a
    # slow casting loop (8x slower than the float product; the values are the same).
    if wanted:
        score += w.modality * any_bits(table, "modalities", wanted, rows).astype(np.float64)
    if c.concerns:
        score += w.concern * any_bits(table, "concerns", c.concerns, rows).astype(np.float64)
    if c.point is not None:
        near = 1.0 - distances / max(c.radius_miles, 1e-9)
        score += w.nearness * np.nan_to_num(np.clip(near, 0.0, 1.0))
    # Whole days of wait as the lookup's positions: np.take is ~15x slower with the
    # column's int32 than with native-width positions.
    days = gather(table.columns["wait_days"], rows).astype(np.intp)
    np.clip(days, -1, WAIT_STEPS, out=days)
    days += 1
    score += np.take(_availability_of_wait(), days)
    return score


#: Waits of this many days or more (and unknown ones) add nothing to relevance.
WAIT_STEPS = int(np.ceil(WEIGHTS.wait_horizon_days)) + 1


@lru_cache(maxsize=1)
def _availability_of_wait() -> np.ndarray:
    """The availability term of ``relevance`` for each whole wait in days, from -1
    (unknown) to ``WAIT_STEPS``: one lookup per row instead of the arithmetic per row
    (the same values, computed by the same operations)."""
    w = WEIGHTS
    wait = np.arange(-1, WAIT_STEPS + 1).astype(np.float64)
    return w.availability * np.where(
        wait >= 0, np.clip(1.0 - wait / w.wait_horizon_days, 0.0, 1.0), 0.0)


def freshness(table: ProviderTable, rows: np.ndarray, c: Criteria) -> tuple[np.ndarray, np.ndarray]:
    """``(stale, reported)`` of ``rows``: not verified within the stale period, and marked
    by patients' reports (``referral.reports``). The one place that says which listings
    rank after verified ones (``unverified``): every sort, the finder and pairs use it."""
    stale = gather(table.columns["verified_at"], rows) >= c.now - c.stale_after_days * DAY
    np.logical_not(stale, out=stale)  # never verified (NaN) is stale
    return stale, gather(table.columns["reported"], rows)  # a gathered copy


def unverified(stale: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Listings that rank after verified ones: stale or reported, alike."""
    return stale | reported


def _order(primary: np.ndarray, stale: np.ndarray, rows: np.ndarray, want: int) -> np.ndarray:
    """Indexes of the first ``want`` entries by (unverified last, primary ascending, row)."""
    finite_max = 1e9
    # Quantized to 1e-4, clipped to +-finite_max; NaN and +inf last (finite_max), -inf
    # first (-finite_max). In place: a national search orders hundreds of thousands.
    with np.errstate(over="ignore"):  # beyond +-finite_max anyway
        quantized = primary * 1e4
    np.round(quantized, out=quantized)
    np.clip(quantized, -finite_max, finite_max, out=quantized)
    quantized[np.isnan(quantized)] = finite_max
    key = quantized.astype(np.int64)
    key += 1 << 34
    key <<= 24
    key |= rows & 0xFFFFFF
    if stale.any():
        key |= stale.astype(np.int64) << 62
    return smallest(key, want)


#: ``smallest`` bounds the wanted keys from an evenly spaced sample of this many keys.
ORDER_SAMPLE = 4096


def smallest(key: np.ndarray, want: int) -> np.ndarray:
    """Indexes of the ``want`` smallest of ``key`` (distinct values), smallest first.

    For a page of a large match set: the ``want``-th smallest key of an evenly spaced
    sample is at least the ``want``-th smallest of all keys, so the keys up to it
    (one comparison over all rows) hold the page; only those few are partitioned and
    sorted. The same indexes as partitioning every key (the keys are distinct).
    """
    if want >= len(key):
        return np.argsort(key, kind="stable")
    if want < 1:
        return np.empty(0, np.int64)
    candidates = None
    if len(key) >= 8 * ORDER_SAMPLE and want <= ORDER_SAMPLE // 4:
        sample = key[::len(key) // ORDER_SAMPLE]
        bound = np.partition(sample, want - 1)[want - 1]
        candidates = np.flatnonzero(key <= bound)
        key = key[candidates]
    part = np.argpartition(key, want - 1)[:want] if want < len(key) else np.arange(len(key))
    part = part[np.argsort(key[part], kind="stable")]
    return part if candidates is None else candidates[part]


#: Free text matching fewer than this share of the table narrows a search first: the
#: structured filters are then evaluated at the rows of the text's matches alone (a name
#: search touches thousands of rows, not a million). The results are the same either way.
TEXT_CANDIDATE_SHARE = 1 / 16


class _Rows:
    """Some rows of a table behind the part of the table's interface that filters and
    the reach rule use (``column``, ``codes``, ``bits``, ``len``)."""

    def __init__(self, table: ProviderTable, rows: np.ndarray):
        self.table, self.rows = table, rows
        self.codes, self.bits = table.codes, table.bits
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> np.ndarray:
        """One column at these rows (gathered once)."""
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = self.table.columns[name][self.rows]
        return found


def _text_candidates(table: ProviderTable, c: Criteria) -> np.ndarray | None:
    """The rows of the text's matches (ascending) when they are few enough to filter alone."""
    if c.text_ids is None or len(c.text_ids) >= TEXT_CANDIDATE_SHARE * len(table):
        return None
    rows = np.sort(table.rows_for_ids(c.text_ids))
    rows = rows[np.searchsorted(rows, 0):]  # ids not in the table
    return rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows


def matching_rows(table: ProviderTable, c: Criteria,
                  memo: SearchMemo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, distances)``: the rows matching ``c`` in ascending order, and each one's
    distance in miles from ``c.point`` (NaN where not computed)."""
    candidates = _text_candidates(table, c)
    if candidates is not None:
        subset = _Rows(table, candidates)
        mask, distances = reach_mask(subset, _passing(subset, c), c)
        return candidates[mask], distances[mask]
    mask, distances = _structured(table, c, memo)
    rows = np.flatnonzero(mask)
    if distances is None:  # no row has a distance: NaN for each, without filling an array
        return rows, np.broadcast_to(np.nan, (len(rows),))
    return rows, gather(distances, rows)


def _text_scores(table: ProviderTable, rows: np.ndarray, c: Criteria) -> np.ndarray:
    """Each row's best text score (0 without free text); ``rows`` ascending."""
    score = np.zeros(len(rows))
    if c.text_ids is None or not len(rows):
        return score
    text_rows = table.rows_for_ids(c.text_ids)
    at = np.minimum(np.searchsorted(rows, text_rows), len(rows) - 1)
    inside = (text_rows >= 0) & (rows[at] == text_rows)
    np.maximum.at(score, at[inside], c.text_scores[inside])
    return score


def search(table: ProviderTable, c: Criteria, with_facets: bool = True,
           memo: SearchMemo | None = None) -> Hits:
    """Filter, rank and page the table for ``c`` (``memo``: see ``SearchMemo``)."""
    if c.sort not in SORTS:
        raise ValueError(f"unknown sort {c.sort!r}")
    rows, row_distances = matching_rows(table, c, memo)
    total = len(rows)
    text_score = _text_scores(table, rows, c)
    stale, reported = freshness(table, rows, c)
    if c.sort == "relevance":
        primary = -relevance(table, rows, row_distances, text_score, c)
    elif c.sort == "distance":
        primary = row_distances
    elif c.sort == "fee":
        fees = gather(table.columns["fee_min"], rows).astype(np.float64)
        primary = np.where(fees >= 0, fees, np.inf)
    else:
        waits = gather(table.columns["wait_days"], rows).astype(np.float64)
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
    telehealth = int(np.count_nonzero(gather(table.columns["telehealth"], rows)))
    return {
        "modality": table.value_counts("modalities", rows),
        "provider_type": table.value_counts("provider_type", rows),
        "telehealth": {"true": telehealth, "false": len(rows) - telehealth},
        "insurance": table.value_counts("insurance", rows),
        "language": table.value_counts("languages", rows),
    }
