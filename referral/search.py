"""Patient search: turn a patient's needs into index criteria, run them, explain results.

``search_providers`` is the one entry point (used by the API and the pages).
Free text is first read for vocabulary the directory knows (concerns,
modalities, languages, provider types, insurance, age groups), which then act
as structured filters; the remaining words (names, clinic names, bio words) go
to whoosh, typo-tolerant. Structured filters, distance, ranking and facets run
in the in-memory table (``search_index``).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from search_index.reach import reach
from search_index.searcher import Criteria, SearchMemo
from search_index.text import words

from .crisis import crisis_notice, signals_crisis
from .geo import distance_miles, lookup_zip, nearest_place
from .i18n import N_, gettext, money
from .limits import DEFAULT_PER_PAGE, DEFAULT_RADIUS_MILES
from .listing_rules import verification
from .models import Provider, utcnow
from .search_service import SearchService
from .vocab import (
    CONCERN_LABELS,
    CONCERN_MODALITIES,
    LANGUAGES,
    PAYERS,
    SPECIALTIES,
    VOCABULARIES,
    fold,
    gender_category,
    modality_name,
    term_label,
)
from .wording import fee_range

#: The phrase table: how patients write, and what it means (see the file's header).
PHRASE_FILE = Path(__file__).parent / "data" / "phrases.csv"
#: Vocabularies free text can name.
QUERY_FIELDS = ("concern", "modality", "language", "provider_type", "role", "insurance",
                "age_group", "specialty", "gender")
#: Short spellings that are ordinary words or codes of other things in free text.
_AMBIGUOUS = {"act", "ba", "pe", "mi", "pa", "np", "am", "so", "he", "hi", "it", "el", "en",
              "es", "fa", "pt", "uk", "ne", "pl", "de", "fr", "ar", "ko", "ru", "ja", "tl",
              "vi", "zh", "gu", "bn", "ur", "hy", "km", "man", "male", "female"}
#: Approach codes that are ordinary words unless written in capitals (``ACT``, ``MI``).
_CAPITAL_CODES = {"act": "ACT", "mi": "MI", "pe": "PE", "ba": "BA"}
#: The longest phrase read, in words ("medication for opioid use disorder").
_MAX_PHRASE = 6
FILLER = "filler"


def read_phrase_file(path: Path = PHRASE_FILE) -> list[tuple[str, str, str]]:
    """``(phrase, field, value)`` rows of the phrase table (comment lines skipped)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return [(row["phrase"], row["field"], row["value"] or "") for row in rows]


def _phrase_table() -> dict[str, tuple[tuple[str, str], ...]]:
    """Folded phrase -> the ``(field, value)`` terms it means (``()`` for filler)."""
    table: dict[str, tuple[tuple[str, str], ...]] = {}
    for name in QUERY_FIELDS:
        if name == "gender":
            continue  # "man", "male" are read through the phrase file only
        for spelling, value in VOCABULARIES[name].aliases.items():
            if spelling not in _AMBIGUOUS and len(spelling) > 2:
                table.setdefault(spelling, ((name, value),))
    for code in LANGUAGES:  # language codes are too short and ambiguous in free text
        if len(code) <= 3 and code != "asl":
            table.pop(code, None)
    table["asl"] = (("language", "ase"),)
    from_file: dict[str, list[tuple[str, str]]] = {}
    for phrase, name, value in read_phrase_file():
        key = fold(" ".join(words(phrase)))
        terms = from_file.setdefault(key, [])
        if name != FILLER:
            value = VOCABULARIES[name].lookup(value)
            terms.append((name, value))
    for key, terms in from_file.items():
        table[key] = tuple(terms)
    return table


PHRASES = _phrase_table()
#: Words of natural-language queries that say nothing about whom to find.
QUERY_STOP_WORDS = frozenset(key for key, terms in PHRASES.items() if not terms)


def _phrase(key: str) -> tuple[tuple[str, str], ...] | None:
    """The terms of a folded phrase, also without a plural or possessive ``s``."""
    found = PHRASES.get(key)
    if found is None and len(key) > 3 and key.endswith("s"):
        found = PHRASES.get(key[:-1])
    return found


@dataclass
class Understood:
    """What free text was read as: vocabulary values, and the words left for whoosh.

    ``sources`` gives, per ``(field, value)``, the words of the query that said it (so
    the page can show it and offer to remove it); ``tokens`` are the query's words."""

    terms: dict[str, list[str]] = field(default_factory=dict)
    text_words: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    sources: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)

    def without(self, name: str, value: str) -> str:
        """The query's words without those that said ``(name, value)``."""
        drop = set(self.sources.get((name, value), ()))
        return " ".join(t for i, t in enumerate(self.tokens) if i not in drop)


def _prepare(text: str) -> str:
    """Curly apostrophes straightened, possessive ``'s`` / ``s'`` dropped; an apostrophe
    inside a name stays (``O'Brien`` is the index's words ``o`` and ``brien``)."""
    text = text.replace("\u2019", "'")
    return re.sub(r"(?<=\w)'s\b|(?<=s)'(?!\w)", "", text)


def understand_query(text: str | None, is_known_word=lambda word: False) -> Understood:
    """Read vocabulary out of free text (longest phrases first, plurals, possessives and
    typos tolerated); filler words are dropped, other words are left for text search."""
    understood = Understood()
    prepared = _prepare(text or "")
    raw = prepared.split()
    tokens = words(prepared)
    understood.tokens = tokens
    upper = {w.casefold() for w in raw if w.isupper()}
    filler: list[str] = []
    index = 0
    while index < len(tokens):
        for size in range(min(_MAX_PHRASE, len(tokens) - index), 0, -1):
            key = fold("".join(tokens[index:index + size]))
            found = _phrase(key)
            if size == 1 and key in _CAPITAL_CODES and key in upper:
                found = (("modality", _CAPITAL_CODES[key]),)
            if found is None and size == 1 and len(key) >= 5 and not is_known_word(key):
                close = difflib.get_close_matches(key, PHRASES, n=1, cutoff=0.85)
                if close:
                    found = PHRASES[close[0]]
                    understood.corrections[tokens[index]] = close[0]
            if found is not None:
                if not found:
                    filler.extend(tokens[index:index + size])
                for name, value in found:
                    values = understood.terms.setdefault(name, [])
                    if value not in values:
                        values.append(value)
                    understood.sources.setdefault((name, value), []).extend(
                        range(index, index + size))
                index += size
                break
        else:
            understood.text_words.append(tokens[index])
            index += 1
    meaningful = [w for w in understood.text_words if not signals_crisis(w)]
    if signals_crisis(text):  # what matters is the crisis notice, then whoever can help
        meaningful = [w for w in meaningful if is_known_word(w)]
    if meaningful or understood.terms or signals_crisis(text):
        understood.text_words = meaningful
    else:  # only filler: search it as words (it may be a name: "Will", "Hope")
        understood.text_words = filler
    return understood


def _merge(given, found) -> tuple:
    merged = list(given or [])
    for value in found or []:
        if value not in merged:
            merged.append(value)
    return tuple(merged)


def build_criteria(params: dict, understood: Understood, now: dt.datetime,
                   stale_after_days: int, hidden_after_days: int) -> tuple[Criteria, dict]:
    """Index criteria for validated search parameters; also the resolved location."""
    terms = understood.terms
    location: dict = {}
    point, state = None, params.get("state")
    if params.get("zip"):
        place = lookup_zip(params["zip"])
        point = (place.latitude, place.longitude)
        state = state or place.state
        location = {"zip": place.zip, "city": place.city, "state": state}
    elif params.get("lat") is not None:
        point = (params["lat"], params["lon"])
        state = state or nearest_place(*point).state
        location = {"lat": point[0], "lon": point[1], "state": state}
    elif state:
        location = {"state": state}
    telehealth, in_person = params.get("telehealth"), params.get("in_person")
    concerns = _merge(params.get("concern"), terms.get("concern"))
    modalities = _merge(params.get("modality"), terms.get("modality"))
    suited = () if modalities else tuple(dict.fromkeys(
        m for concern in concerns for m in CONCERN_MODALITIES[concern]))
    criteria = Criteria(
        now=now.timestamp(),
        roles=_merge([params["role"]] if params.get("role") else [], terms.get("role")),
        provider_types=_merge([params["provider_type"]] if params.get("provider_type") else [],
                              terms.get("provider_type")),
        modalities=modalities, concerns=concerns, suited_modalities=suited,
        age_groups=_merge([params["age_group"]] if params.get("age_group") else [],
                          terms.get("age_group")),
        languages=_merge([params["language"]] if params.get("language") else [],
                         terms.get("language")),
        genders=_merge([params["gender"]] if params.get("gender") else [], terms.get("gender")),
        specialties=_merge(params.get("specialty"), terms.get("specialty")),
        insurance=_merge(params.get("insurance"), terms.get("insurance")),
        point=point, radius_miles=params.get("radius_miles", DEFAULT_RADIUS_MILES), state=state,
        telehealth=telehealth is True or (telehealth is None and in_person is not True),
        in_person=in_person is True or (in_person is None and telehealth is not True),
        max_fee=params.get("max_fee"), sliding_scale=bool(params.get("sliding_scale")),
        accepting_only=params.get("accepting_new_patients", True),
        coordinated_only=bool(params.get("accepts_coordinated_care")),
        include_stale=bool(params.get("include_stale")),
        stale_after_days=stale_after_days, hidden_after_days=hidden_after_days,
        sort=params.get("sort", "relevance"),
        offset=(params.get("page", 1) - 1) * params.get("per_page", DEFAULT_PER_PAGE),
        limit=params.get("per_page", DEFAULT_PER_PAGE),
    )
    return criteria, location


def reasons_for(listing: dict, criteria: Criteria, distance: float | None, matched: list[str],
                text_matched: bool, understood: Understood) -> list[str]:
    """Plain-language reasons why a listing (as dumped for the API) matched."""
    reasons = []
    if text_matched and understood.text_words:
        reasons.append(gettext("Matches \u201c%(words)s\u201d",
                               words=" ".join(understood.text_words)))
    concern_names = [gettext(CONCERN_LABELS[c]) for c in criteria.concerns]
    offered = ", ".join(modality_name(m) for m in matched)
    if matched and criteria.suited_modalities:
        reasons.append(gettext("Offers %(approaches)s, suited to %(concerns)s",
                               approaches=offered, concerns=", ".join(concern_names)))
    elif matched:
        reasons.append(gettext("Offers %(approaches)s", approaches=offered))
    treated = [gettext(CONCERN_LABELS[c]) for c in criteria.concerns if c in listing["concerns"]]
    if treated:
        reasons.append(gettext("Treats %(concerns)s", concerns=", ".join(treated)))
    for specialty in criteria.specialties:
        if specialty in (listing.get("specialties") or ()):
            reasons.append(gettext(SPECIALTIES[specialty]))
    if criteria.genders and gender_category(listing.get("gender")) in criteria.genders:
        reasons.append(gettext("Gender: %(gender)s", gender=listing["gender"]))
    if distance is not None:
        reasons.append(gettext("In person, %(miles)s miles away", miles=f"{distance:.1f}"))
    if (criteria.state and criteria.telehealth and listing["telehealth"]
            and criteria.state in listing["licensed_states"]):
        reasons.append(gettext("Telehealth, licensed in %(state)s", state=criteria.state))
    fees = fee_range(listing["fee_min"], listing["fee_max"])
    if criteria.max_fee is not None and fees:
        within = max(fee for fee in (listing["fee_min"], listing["fee_max"])
                     if fee is not None) <= criteria.max_fee
        if within:
            reasons.append(gettext("Fees %(fees)s, all within your %(limit)s", fees=fees,
                                   limit=money(criteria.max_fee)))
        else:
            reasons.append(gettext("Fees %(fees)s, sliding scale from %(lowest)s (your limit "
                                   "%(limit)s)", fees=fees, lowest=money(listing["fee_min"]),
                                   limit=money(criteria.max_fee)))
    if criteria.sliding_scale and listing["sliding_scale"]:
        reasons.append(gettext("Sliding-scale fees"))
    paid = [PAYERS[p][0] for p in criteria.insurance if p in listing["insurance"]]
    if paid:
        reasons.append(gettext("Accepts %(insurance)s", insurance=", ".join(paid)))
    spoken = [gettext(LANGUAGES[code]) for code in criteria.languages
              if code in listing["languages"]]
    if spoken:
        reasons.append(gettext("Speaks %(languages)s", languages=", ".join(spoken)))
    if criteria.accepting_only and listing["accepting_new_patients"]:
        reasons.append(gettext("Accepting new patients"))
    if criteria.coordinated_only and listing["accepts_coordinated_care"]:
        reasons.append(gettext("Coordinates care with the patient's other providers"))
    return reasons


def freshness(config) -> dict:
    """The freshness settings every search-like answer needs, from the app config."""
    return {"stale_after_days": config["STALE_AFTER_DAYS"],
            "hidden_after_days": config["HIDDEN_AFTER_DAYS"]}


def placement(listing: dict, criteria: Criteria) -> tuple[float | None, list[str]]:
    """Geodesic distance (geopy) from the patient, and how the provider can see them:
    ``in_person`` (within the radius, or in the patient's state when no location is
    given) and/or ``telehealth`` (licensed in the patient's state)."""
    distance = None
    if criteria.point is not None and listing["latitude"] is not None:
        distance = distance_miles(criteria.point, (listing["latitude"], listing["longitude"]))
    return distance, reach(listing, criteria, distance)


def search_providers(service: SearchService, session, params: dict,
                     dump_listing: Callable[[Provider], dict], *, now: dt.datetime | None = None,
                     stale_after_days: int = 90, hidden_after_days: int = 365) -> dict:
    """Search listings for a patient; ``params`` are validated search parameters.

    Returns ``{crisis?, items, total, page, per_page, facets, did_you_mean, interpreted,
    relaxations}``. Each item is the listing as ``dump_listing`` renders it, with
    ``distance_miles`` (geodesic, geopy), ``reasons``, ``matched_modalities``, ``reach``
    and ``stale``. Rendered listings are cached per process and reused only while their
    version matches the index, so they are as current as the change log.

    Words left over after reading the vocabulary narrow the results only when some result
    has them; when none has and the query also said something understood, they only rank
    (``interpreted.unmatched``). A page past the last goes to the last page. With no
    results, ``relaxations`` say which single change would give results, and how many;
    ``did_you_mean`` is offered only when it returns results.
    """
    now = now or utcnow()
    q = params.get("q")
    # Structured-only searches never wait on the text index.
    text_ready = service.refresh(session, text=bool(q))
    understood = understand_query(q, service.knows_word if q else (lambda word: False))
    freshness = {"stale_after_days": stale_after_days, "hidden_after_days": hidden_after_days}
    criteria, location = build_criteria(params, understood, now, **freshness)
    text = " ".join(understood.text_words) or None
    # The search's questions (the answer, a last page, "did you mean", a dozen relaxation
    # counts) share each filter's mask and each text search through one memo.
    memo = SearchMemo()
    hits = service.find(session, criteria, text, memo=memo)
    unmatched: list[str] = []
    if text and hits.total == 0 and understood.terms:
        text, unmatched = None, list(understood.text_words)
        hits = service.find(session, criteria, None, memo=memo)
    per_page = params.get("per_page", DEFAULT_PER_PAGE)
    last_page = max(1, -(-hits.total // per_page))
    page = params.get("page", 1)
    if hits.total and page > last_page:
        page = last_page
        criteria = dataclasses.replace(criteria, offset=(page - 1) * per_page)
        hits = service.find(session, criteria, text, memo=memo)
    crisis = signals_crisis(q)
    did_you_mean, relaxations = None, []
    if hits.total == 0:
        def count(changed: dict) -> int:
            found = understand_query(changed.get("q"), service.knows_word)
            changed_criteria, _ = build_criteria(changed, found, now, **freshness)
            words_left = " ".join(found.text_words) or None
            return service.count(session, changed_criteria, words_left, memo=memo)
        if q and not crisis:
            did_you_mean = next((text for text in _suggestions(service, understood, q)
                                 if count({**params, "q": text})), None)
        for option in relaxations_for(params, understood):
            if len(relaxations) == MAX_RELAXATIONS:
                break  # the first ones that give results are offered
            if total := count(option["params"]):
                relaxations.append({**option, "total": total})
    ids = hits.ids
    listings = service.listings(session, ids, hits.versions, dump_listing)
    wanted = set(criteria.modalities) | set(criteria.suited_modalities)
    items = []
    for provider_id, stale, reported, text_score in zip(
            ids, hits.stale.tolist(), hits.reported.tolist(), hits.text_scores.tolist(),
            strict=False):
        listing = listings.get(provider_id)
        if listing is None:
            continue  # deleted between the index read and now
        distance, ways = placement(listing, criteria)
        in_radius = "in_person" in ways and distance is not None
        matched = [m for m in listing["modalities"] if m in wanted]
        items.append({
            **listing,
            "distance_miles": round(distance, 2) if distance is not None else None,
            "reasons": reasons_for(listing, criteria, distance if in_radius else None, matched,
                                   text_score > 0, understood),
            "matched_modalities": matched, "reach": ways, "stale": bool(stale),
            "verification": verification(listing["last_verified_at"], listing["clinic"], stale,
                                         reported),
        })
    answer = {
        "items": items, "total": hits.total, "page": page, "per_page": per_page,
        "facets": hits.facets, "did_you_mean": did_you_mean,
        "interpreted": {"terms": understood.terms, "text": " ".join(understood.text_words),
                        "unmatched": unmatched, "location": location,
                        "index_current": text_ready,
                        "chips": chips(params, understood)},
        "relaxations": [{"label": r["label"], "total": r["total"], "change": r["change"]}
                        for r in relaxations],
    }
    if crisis:
        answer = {"crisis": crisis_notice(), **answer}
    return answer


#: At most this many relaxations are offered when nothing matched.
MAX_RELAXATIONS = 5
#: Search parameters a patient chooses from a vocabulary, with the field they name.
_TERM_PARAMS = {"language": "language", "gender": "gender", "age_group": "age_group",
                "role": "role", "provider_type": "provider_type", "concern": "concern",
                "modality": "modality", "specialty": "specialty", "insurance": "insurance"}
_WIDER = (50, 100, 250)


def chips(params: dict, understood: Understood) -> list[dict]:
    """What the search was understood to ask for, each removable: ``{field, value, label,
    change}`` where ``change`` is the form change that removes it (``None`` = remove)."""
    found = []
    for name, values in understood.terms.items():
        for value in values:
            change = {"q": understood.without(name, value) or None}
            if name in _TERM_PARAMS and value in _as_list(params.get(name)):
                change[name] = _without(params, name, value)
            found.append({"field": name, "value": value, "label": term_label(name, value),
                          "change": change})
    for name in _TERM_PARAMS:
        for value in _as_list(params.get(name)):
            if value not in understood.terms.get(name, ()):
                found.append({"field": name, "value": value, "label": term_label(name, value),
                              "change": {name: _without(params, name, value)}})
    return found


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _without(params: dict, name: str, value: str):
    rest = [v for v in _as_list(params.get(name)) if v != value]
    return rest if isinstance(params.get(name), list | tuple) and rest else None


def relaxations_for(params: dict, understood: Understood) -> list[dict]:
    """Single changes that loosen a search, most useful first: ``{label, change, params}``
    (``change`` as form values, ``None`` meaning remove; ``params`` the changed search)."""
    options: list[tuple[str, dict]] = []
    if params.get("q") and understood.text_words and not understood.terms:
        options.append((gettext("Search without \u201c%(words)s\u201d",
                                words=" ".join(understood.text_words)), {"q": None}))
    located = params.get("zip") or params.get("lat") is not None
    radius = params.get("radius_miles", DEFAULT_RADIUS_MILES)
    if located and params.get("in_person") is not False and radius < _WIDER[-1]:
        wider = next(r for r in _WIDER if r > radius)
        options.append((gettext("Widen to %(miles)s miles", miles=wider),
                        {"radius_miles": wider}))
    only_in_person = params.get("telehealth") is False or (
        params.get("in_person") and not params.get("telehealth"))
    if only_in_person and (located or params.get("state")):
        options.append((gettext("Include telehealth"), {"telehealth": None, "in_person": None}))
    if params.get("telehealth") and not params.get("in_person") and located:
        options.append((gettext("Include in-person visits"),
                        {"telehealth": None, "in_person": None}))
    if params.get("max_fee") is not None and not params.get("sliding_scale"):
        options.append((gettext("Include sliding-scale fees"), {"sliding_scale": True}))
    for label, name in ((N_("Any insurance"), "insurance"), (N_("Any fee"), "max_fee"),
                        (N_("Not only sliding scale"), "sliding_scale"),
                        (N_("Not only coordinated care"), "accepts_coordinated_care")):
        if params.get(name):
            options.append((gettext(label), {name: None}))
    for chip in chips(params, understood):
        options.append((gettext("Without \u201c%(label)s\u201d", label=chip["label"]),
                        chip["change"]))
    if params.get("accepting_new_patients", True):
        options.append((gettext("Include providers not taking new patients"),
                        {"accepting_new_patients": False}))
    relaxed = []
    for label, change in options:
        changed = {**params, **change}
        changed = {key: value for key, value in changed.items() if value is not None}
        changed.setdefault("radius_miles", DEFAULT_RADIUS_MILES)
        changed["page"] = 1
        relaxed.append({"label": label, "change": change, "params": changed})
    return relaxed


def _suggestions(service: SearchService, understood: Understood, q: str) -> list[str]:
    """Corrected queries to try, best first: every word corrected, then also without the
    words that are neither listed nor correctable (``Okafr qqqq`` -> ``Okafor``)."""
    corrected = " ".join(understood.text_words)
    suggestion = service.suggest(corrected) if corrected else None
    vocabulary_fix = {word: fix for word, fix in understood.corrections.items()}
    if not suggestion and not vocabulary_fix:
        return []
    text = q
    new_words = suggestion.split() if suggestion else []
    for old, new in zip(understood.text_words, new_words, strict=False):
        if old != new:
            text = _replace_word(text, old, new)
    for old, new in vocabulary_fix.items():
        text = _replace_word(text, old, new)
    found = [text]
    unknown = [new for new in new_words if not service.knows_word(new)]
    if unknown and len(unknown) < len(new_words):
        trimmed = text
        for word in unknown:
            trimmed = re.sub(rf"(?i)\s*\b{re.escape(word)}\b", "", trimmed, count=1).strip()
        found.append(trimmed)
    return [t for t in found if t and t.casefold() != q.casefold()]


def _replace_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"(?i)\b{re.escape(old)}\b", new, text, count=1)
