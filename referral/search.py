"""Patient search: turn a patient's needs into index criteria, run them, explain results.

``search_providers`` is the one entry point (used by the API and the pages).
Free text is first read for vocabulary the directory knows (concerns,
modalities, languages, provider types, insurance, age groups), which then act
as structured filters; the remaining words (names, clinic names, bio words) go
to whoosh, typo-tolerant. Structured filters, distance, ranking and facets run
in the in-memory table (``search_index``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from search_index.reach import reach
from search_index.searcher import Criteria
from search_index.text import words

from .crisis import crisis_notice, signals_crisis
from .geo import distance_miles, lookup_zip, nearest_place
from .limits import DEFAULT_PER_PAGE, DEFAULT_RADIUS_MILES
from .models import Provider, utcnow
from .search_service import SearchService
from .vocab import CONCERN_LABELS, CONCERN_MODALITIES, LANGUAGES, PAYERS, VOCABULARIES, fold

#: Query words that name vocabulary values beyond the vocabularies' own spellings.
QUERY_SYNONYMS: dict[str, tuple[str, str]] = {
    "therapy": ("role", "therapist"), "counseling": ("role", "therapist"),
    "medication": ("role", "prescriber"), "meds": ("role", "prescriber"),
    "psychiatry": ("provider_type", "psychiatrist"), "mindfulness": ("modality", "MBCT"),
    "exposure": ("modality", "ERP"), "couples": ("modality", "FAMILY"),
    "marriage": ("modality", "FAMILY"), "depressed": ("concern", "depression"),
    "anxious": ("concern", "anxiety"), "panicattacks": ("concern", "panic"),
    "sleep": ("concern", "insomnia"), "alcohol": ("concern", "substance_use"),
    "drugs": ("concern", "substance_use"), "bereavement": ("concern", "grief"),
    "teenager": ("age_group", "adolescent"), "teenagers": ("age_group", "adolescent"),
    "child": ("age_group", "child"), "elderly": ("age_group", "older_adult"),
}
#: Short spellings that are ordinary words or codes of other things in free text.
_AMBIGUOUS = {"act", "ba", "pe", "mi", "pa", "np", "am", "so", "he", "hi", "it", "el", "en",
              "es", "fa", "pt", "uk", "ne", "pl", "de", "fr", "ar", "ko", "ru", "ja", "tl",
              "vi", "zh", "gu", "bn", "ur", "hy", "km", "man", "male", "female"}
#: Words of natural-language queries that say nothing about whom to find.
QUERY_STOP_WORDS = frozenset([
    "a", "about", "also", "am", "an", "and", "any", "are", "around", "as", "at", "be", "best",
    "by", "can", "could", "do", "does", "find", "for", "from", "get", "good", "have", "help",
    "i", "i'm", "im", "in", "is", "it", "looking", "me", "my", "myself", "near", "nearby",
    "need", "of", "on", "or", "please", "provider", "providers", "really", "see", "seeing",
    "some", "someone", "somebody", "talk", "that", "the", "this", "to", "us", "very", "want",
    "we", "who", "will", "with", "would", "you", "your"
])
_QUERY_FIELDS = ("concern", "modality", "language", "provider_type", "role", "insurance",
                 "age_group")
_MAX_PHRASE = 4


def _phrase_table() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for name in _QUERY_FIELDS:
        for spelling, value in VOCABULARIES[name].aliases.items():
            if spelling not in _AMBIGUOUS and len(spelling) > 2:
                table.setdefault(spelling, (name, value))
    for code in LANGUAGES:  # language codes are too short and ambiguous in free text
        if len(code) <= 3 and code != "asl":
            table.pop(code, None)
    table["asl"] = ("language", "ase")
    for spelling, target in QUERY_SYNONYMS.items():
        table[fold(spelling)] = target
    return table


PHRASES = _phrase_table()


@dataclass
class Understood:
    """What free text was read as: vocabulary values, and the words left for whoosh."""

    terms: dict[str, list[str]] = field(default_factory=dict)
    text_words: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)


def understand_query(text: str | None, is_known_word=lambda word: False) -> Understood:
    """Read vocabulary out of free text (longest phrases first, typo-tolerant)."""
    understood = Understood()
    raw = (text or "").split()
    tokens = words(text or "")
    upper = {w.casefold() for w in raw if w.isupper()}
    index = 0
    while index < len(tokens):
        for size in range(min(_MAX_PHRASE, len(tokens) - index), 0, -1):
            key = fold("".join(tokens[index:index + size]))
            found = PHRASES.get(key)
            if found is None and size == 1 and key == "act" and "act" in upper:
                found = ("modality", "ACT")
            if found is None and size == 1 and len(key) >= 5 and not is_known_word(key):
                close = difflib.get_close_matches(key, PHRASES, n=1, cutoff=0.85)
                if close:
                    found = PHRASES[close[0]]
                    understood.corrections[tokens[index]] = close[0]
            if found is not None:
                name, value = found
                values = understood.terms.setdefault(name, [])
                if value not in values:
                    values.append(value)
                index += size
                break
        else:
            understood.text_words.append(tokens[index])
            index += 1
    meaningful = [w for w in understood.text_words
                  if w not in QUERY_STOP_WORDS and not signals_crisis(w)]
    if signals_crisis(text):  # what matters is the crisis notice, then whoever can help
        meaningful = [w for w in meaningful if is_known_word(w)]
    if meaningful or understood.terms or signals_crisis(text):
        understood.text_words = meaningful
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
        genders=(params["gender"],) if params.get("gender") else (),
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
        reasons.append(f"Matches \u201c{' '.join(understood.text_words)}\u201d")
    concern_names = [CONCERN_LABELS[c] for c in criteria.concerns]
    if matched and criteria.suited_modalities:
        reasons.append(f"Offers {', '.join(matched)}, suited to {', '.join(concern_names)}")
    elif matched:
        reasons.append(f"Offers {', '.join(matched)}")
    treated = [CONCERN_LABELS[c] for c in criteria.concerns if c in listing["concerns"]]
    if treated:
        reasons.append(f"Treats {', '.join(treated)}")
    if distance is not None:
        reasons.append(f"In person, {distance:.1f} miles away")
    if (criteria.state and criteria.telehealth and listing["telehealth"]
            and criteria.state in listing["licensed_states"]):
        reasons.append(f"Telehealth, licensed in {criteria.state}")
    if criteria.max_fee is not None and listing["fee_min"] is not None:
        reasons.append(f"Fees from ${listing['fee_min']} (your limit ${criteria.max_fee})")
    if criteria.sliding_scale and listing["sliding_scale"]:
        reasons.append("Sliding-scale fees")
    paid = [PAYERS[p][0] for p in criteria.insurance if p in listing["insurance"]]
    if paid:
        reasons.append(f"Accepts {', '.join(paid)}")
    spoken = [LANGUAGES[code] for code in criteria.languages if code in listing["languages"]]
    if spoken:
        reasons.append(f"Speaks {', '.join(spoken)}")
    if criteria.accepting_only and listing["accepting_new_patients"]:
        reasons.append("Accepting new patients")
    if criteria.coordinated_only and listing["accepts_coordinated_care"]:
        reasons.append("Coordinates care with the patient's other providers")
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

    Returns ``{crisis?, items, total, page, per_page, facets, did_you_mean, interpreted}``.
    Each item is the listing as ``dump_listing`` renders it, with ``distance_miles``
    (geodesic, geopy), ``reasons``, ``matched_modalities``, ``reach`` and ``stale``.
    Rendered listings are cached per process and reused only while their version
    matches the index, so they are as current as the change log.
    """
    now = now or utcnow()
    q = params.get("q")
    # Structured-only searches never wait on the text index.
    text_ready = service.refresh(session, text=bool(q))
    understood = understand_query(q, service.knows_word if q else (lambda word: False))
    criteria, location = build_criteria(params, understood, now, stale_after_days,
                                        hidden_after_days)
    hits = service.find(session, criteria, " ".join(understood.text_words) or None)
    did_you_mean = None
    if q and hits.total == 0 and not signals_crisis(q):
        did_you_mean = _suggestion(service, understood, q)
    ids = hits.ids
    listings = service.listings(session, ids, hits.versions, dump_listing)
    wanted = set(criteria.modalities) | set(criteria.suited_modalities)
    items = []
    for provider_id, stale, text_score in zip(ids, hits.stale.tolist(),
                                              hits.text_scores.tolist(), strict=False):
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
        })
    answer = {
        "items": items, "total": hits.total, "page": params.get("page", 1),
        "per_page": params.get("per_page", 20), "facets": hits.facets,
        "did_you_mean": did_you_mean,
        "interpreted": {"terms": understood.terms, "text": " ".join(understood.text_words),
                        "location": location, "index_current": text_ready},
    }
    if signals_crisis(q):
        answer = {"crisis": crisis_notice(), **answer}
    return answer


def _suggestion(service: SearchService, understood: Understood, q: str) -> str | None:
    corrected = " ".join(understood.text_words)
    suggestion = service.suggest(corrected) if corrected else None
    vocabulary_fix = {word: fix for word, fix in understood.corrections.items()}
    if not suggestion and not vocabulary_fix:
        return None
    text = q
    if suggestion:
        for old, new in zip(understood.text_words, suggestion.split(), strict=False):
            if old != new:
                text = _replace_word(text, old, new)
    for old, new in vocabulary_fix.items():
        text = _replace_word(text, old, new)
    return text if text.casefold() != q.casefold() else None


def _replace_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"(?i)\b{re.escape(old)}\b", new, text, count=1)
