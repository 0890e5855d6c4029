"""Deterministic generator of realistic demo clinics and provider listings.

Plain data only (no database): the same ``seed`` always gives the same
directory. ZIP codes are real (bundled data), weighted toward populated areas;
about 30% of providers are prescribers; modalities follow the concerns each
provider treats; some listings are deliberately stale.

Population proxy: the bundled ZIP data has no population, so each standard
ZIP is weighted by the square root of the number of standard ZIPs sharing its
city, which puts big cities' practices far ahead of rural ones.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from collections import Counter
from dataclasses import dataclass

from referral.geo import zip_table
from referral.npi import make_npi
from referral.taxonomy import PRESCRIBER_CODES, THERAPIST_CODES
from referral.vocab import CONCERN_MODALITIES, MODALITIES, PAYERS, SPECIALTIES, STATES

FIRST_NAMES = [
    "Aaliyah", "Aaron", "Abigail", "Adrian", "Aisha", "Alejandro", "Alex", "Alicia", "Amara",
    "Amir", "Ana", "Andre", "Angela", "Anita", "Arjun", "Ava", "Benjamin", "Bianca", "Brandon",
    "Camila", "Carlos", "Carmen", "Chloe", "Chen", "Daniel", "Darnell", "David", "Deepa",
    "Diana", "Dmitri", "Elena", "Elijah", "Emily", "Emma", "Ethan", "Fatima", "Gabriel",
    "Grace", "Hannah", "Hiroshi", "Imani", "Isaac", "Isabella", "Jamal", "Jasmine", "Javier",
    "Jennifer", "Jessica", "Jin", "John", "Jordan", "Jose", "Joseph", "Julia", "Kavya",
    "Keisha", "Kevin", "Kim", "Laura", "Leah", "Liam", "Lucia", "Malik", "Maria", "Mariam",
    "Mark", "Maya", "Mei", "Michael", "Miguel", "Mohammed", "Nadia", "Naomi", "Nathan", "Nia",
    "Noah", "Olivia", "Omar", "Priya", "Rachel", "Rafael", "Rebecca", "Ricardo", "Rosa", "Ruth",
    "Samuel", "Sara", "Sean", "Sofia", "Sophia", "Tamara", "Terrence", "Thomas", "Tiffany",
    "Valentina", "Victor", "Wei", "William", "Xavier", "Yara", "Yusuf", "Zoe"
]
LAST_NAMES = [
    "Abbott", "Adams", "Ahmed", "Alvarez", "Anderson", "Baker", "Banerjee", "Bell", "Brooks",
    "Brown", "Campbell", "Carter", "Castillo", "Chang", "Chen", "Clark", "Collins", "Cruz",
    "Davis", "Diaz", "Dubois", "Edwards", "Evans", "Fischer", "Flores", "Foster", "Garcia",
    "Gomez", "Gonzalez", "Gupta", "Hall", "Harris", "Hernandez", "Hill", "Hoang", "Hughes",
    "Ibrahim", "Jackson", "James", "Jenkins", "Johnson", "Jones", "Kaur", "Kelly", "Khan",
    "Kim", "King", "Kowalski", "Lee", "Lewis", "Lin", "Lopez", "Martin", "Martinez", "Mendoza",
    "Miller", "Mitchell", "Moore", "Morales", "Morgan", "Murphy", "Nakamura", "Nelson",
    "Nguyen", "Novak", "O'Brien", "O'Connor", "Okafor", "Ortiz", "Owens", "Park", "Patel",
    "Perez", "Peterson", "Phillips", "Price", "Ramirez", "Reed", "Reyes", "Richardson",
    "Rivera", "Roberts", "Robinson", "Rodriguez", "Rogers", "Ross", "Russell", "Sanchez",
    "Sanders", "Scott", "Shah", "Singh", "Smith", "Stewart", "Sullivan", "Tanaka", "Taylor",
    "Thomas", "Thompson", "Torres", "Tran", "Turner", "Walker", "Wang", "Ward", "Washington",
    "Watson", "White", "Williams", "Wilson", "Wong", "Wright", "Wu", "Yamamoto", "Young",
    "Zhang"
]
STREETS = ("Main St", "Oak Ave", "Maple St", "Park Ave", "Washington Blvd", "Lakeview Dr",
           "Cedar Ln", "Elm St", "Highland Ave", "Riverside Dr", "Market St", "Church St",
           "Broadway", "Center St", "Pine St", "Franklin Ave", "Jefferson St", "Hillcrest Rd")
CLINIC_PATTERNS = ("{city} Counseling Center", "{last} Psychiatry Associates",
                   "{city} Behavioral Health", "Mindful Path Therapy of {city}",
                   "{last} & {last2} Family Therapy", "{city} Wellness Collaborative",
                   "Integrated Care Partners of {city}", "{last} Psychological Services",
                   "Harbor Light Mental Health ({city})", "{city} Community Mental Health")

PRESCRIBER_TYPES = (("psychiatrist", 40), ("psychiatric_np", 35), ("primary_care", 15),
                    ("physician_assistant", 10))
THERAPIST_TYPES = (("counselor", 35), ("clinical_social_worker", 30), ("psychologist", 20),
                   ("marriage_family_therapist", 15))
CREDENTIALS = {
    "psychiatrist": ("MD", "DO"), "psychiatric_np": ("PMHNP-BC", "APRN, PMHNP"),
    "primary_care": ("MD", "DO"), "physician_assistant": ("PA-C",),
    "counselor": ("LPC", "LMHC", "LPCC", "LCPC"), "clinical_social_worker": ("LCSW", "LICSW"),
    "psychologist": ("PhD", "PsyD"), "marriage_family_therapist": ("LMFT",),
}
TAXONOMY = {
    "psychiatrist": ("2084P0800X", "2084P0804X", "2084P0802X"),
    "psychiatric_np": ("363LP0808X",),
    "primary_care": ("207Q00000X", "207R00000X"),
    "physician_assistant": ("363A00000X",),
    "counselor": ("101YM0800X", "101YP2500X", "101Y00000X"),
    "clinical_social_worker": ("1041C0700X",),
    "psychologist": ("103T00000X", "103TC0700X"),
    "marriage_family_therapist": ("106H00000X",),
}
CONCERN_WEIGHTS = {"depression": 30, "anxiety": 30, "panic": 8, "ocd": 6, "ptsd": 10,
                   "trauma": 14, "emotion_dysregulation": 5, "self_harm": 4, "bpd": 3,
                   "bipolar": 6, "adhd": 10, "insomnia": 5, "substance_use": 8, "grief": 8,
                   "relationships": 12, "life_transitions": 10}
PAYER_WEIGHTS = {"aetna": 35, "bcbs": 45, "cigna": 30, "unitedhealthcare": 35, "anthem": 15,
                 "humana": 8, "kaiser": 5, "medicare": 30, "medicaid": 28, "tricare": 8,
                 "magellan": 6, "carelon": 6, "molina": 6, "oscar": 5, "ambetter": 5,
                 "healthnet": 3}
OTHER_LANGUAGES = ("zh", "vi", "tl", "ko", "ar", "ru", "fr", "ht", "pt", "hi", "fa", "ase", "pl")

_NPI_STRIDE = 282_475_249  # 7**10: coprime with 9 * 10**8, so bodies never repeat in one seed
_NPI_SPACE = 900_000_000

assert set(TAXONOMY) <= set(CREDENTIALS)
assert all(code in PRESCRIBER_CODES or code in THERAPIST_CODES or code.startswith("103T")
           for codes in TAXONOMY.values() for code in codes)
assert set(PAYER_WEIGHTS) == set(PAYERS) and set(CONCERN_WEIGHTS) == set(CONCERN_MODALITIES)


@dataclass(frozen=True)
class DemoClinic:
    """A generated clinic and its practice location."""

    name: str
    organization_npi: str
    email: str
    phone: str
    address_line1: str
    city: str
    state: str
    zip: str
    latitude: float
    longitude: float


@functools.cache
def weighted_zips() -> tuple[list, list[float]]:
    """Standard ZIP places and cumulative weights leaning toward populated cities."""
    places = [p for p in zip_table().values() if p.kind == "STANDARD" and p.state in STATES]
    per_city = Counter((p.city, p.state) for p in places)
    cumulative, total = [], 0.0
    for place in places:
        total += math.sqrt(per_city[(place.city, place.state)])
        cumulative.append(total)
    return places, cumulative


def provider_npi(seed: int, index: int) -> str:
    """The NPI of the ``index``-th generated provider for ``seed`` (unique within a seed)."""
    body = 100_000_000 + (index * _NPI_STRIDE + seed * 104_729 + 17) % _NPI_SPACE
    return make_npi(str(body))


def clinic_npi(seed: int, index: int) -> str:
    """The organization NPI of the ``index``-th generated clinic for ``seed``."""
    body = 100_000_000 + (index * _NPI_STRIDE + seed * 104_729 + 450_000_017) % _NPI_SPACE
    return make_npi(str(body))


def clinic_count(provider_count: int) -> int:
    """How many clinics a directory of ``provider_count`` providers has (about 25 each)."""
    return max(1, math.ceil(provider_count / 25))


def generate_clinics(count: int, seed: int) -> list[DemoClinic]:
    """``count`` clinics at real ZIP codes, deterministic for ``seed``."""
    rng = random.Random(f"clinics-{seed}")
    places, cumulative = weighted_zips()
    clinics = []
    for index in range(count):
        place = rng.choices(places, cum_weights=cumulative)[0]
        last, last2 = rng.sample(LAST_NAMES, 2)
        name = rng.choice(CLINIC_PATTERNS).format(city=place.city.title(), last=last, last2=last2)
        slug = "".join(ch for ch in name.lower() if ch.isalnum())[:30]
        clinics.append(DemoClinic(
            name=name, organization_npi=clinic_npi(seed, index),
            email=f"office@{slug}.example.org",
            phone=f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
            address_line1=(f"{rng.randint(10, 9999)} {rng.choice(STREETS)}, "
                           f"Suite {rng.randint(100, 499)}"),
            city=place.city.title(), state=place.state, zip=place.zip,
            latitude=place.latitude, longitude=place.longitude))
    return clinics


def _weighted_sample(rng: random.Random, weights: dict, k: int) -> list:
    chosen: list = []
    keys, values = list(weights), list(weights.values())
    while len(chosen) < min(k, len(keys)):
        pick = rng.choices(keys, weights=values)[0]
        if pick not in chosen:
            chosen.append(pick)
    return chosen


def _verified_days_ago(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.70:
        return rng.randint(0, 89)
    if roll < 0.92:
        return rng.randint(90, 364)
    return rng.randint(365, 720)


#: Share of listings declaring each specialty (MAT only among prescribers who treat
#: substance use); drawn from a separate stream so the other fields stay as they were.
SPECIALTY_SHARES = {"lgbtq_affirming": 0.30, "veterans": 0.12, "perinatal": 0.08,
                    "couples": 0.15, "eating_disorders": 0.06}


def _specialties(seed: int, index: int, prescriber: bool, concerns: list[str]) -> list[str]:
    rng = random.Random(seed * 7_919 + index * 31 + 5)
    chosen = {name for name, share in SPECIALTY_SHARES.items()
              if rng.random() < share and not (prescriber and name == "couples")}
    if prescriber and "substance_use" in concerns and rng.random() < 0.6:
        chosen.add("mat")
    return [name for name in SPECIALTIES if name in chosen]


def generate_provider(seed: int, index: int, clinics: list[DemoClinic],
                      now: dt.datetime) -> tuple[int, dict]:
    """The ``index``-th provider: ``(clinic index, listing values)``, deterministic."""
    rng = random.Random(seed * 1_000_003 + index)
    clinic_index = rng.randrange(len(clinics))
    clinic = clinics[clinic_index]
    prescriber = rng.random() < 0.30
    types = PRESCRIBER_TYPES if prescriber else THERAPIST_TYPES
    provider_type = rng.choices([t for t, _ in types], weights=[w for _, w in types])[0]

    concerns = _weighted_sample(rng, CONCERN_WEIGHTS, rng.randint(2, 6))
    if prescriber:
        modalities = ["PSYCHOEDUCATION"] if rng.random() < 0.3 else []
        if provider_type == "psychiatrist" and rng.random() < 0.2:
            modalities.append(rng.choice(("CBT", "PSYCHODYNAMIC", "IPT")))
    else:
        suited = sorted({m for c in concerns for m in CONCERN_MODALITIES[c]})
        modalities = rng.sample(suited, min(len(suited), rng.randint(1, 3)))
        modalities += rng.sample(list(MODALITIES), rng.randint(0, 2))
    modalities = [m for m in MODALITIES if m in set(modalities)]

    age_groups = [g for g, p in (("child", 0.15), ("adolescent", 0.35), ("adult", 0.92),
                                 ("older_adult", 0.40)) if rng.random() < p] or ["adult"]
    languages = ["en"] if rng.random() < 0.98 else []
    if rng.random() < 0.18:
        languages.append("es")
    if rng.random() < 0.08:
        languages.append(rng.choice(OTHER_LANGUAGES))
    languages = languages or ["es"]

    telehealth = rng.random() < 0.70
    in_person = rng.random() < 0.80 or not telehealth
    licensed = {clinic.state}
    if telehealth and rng.random() < 0.35:
        licensed.update(rng.sample(sorted(STATES), rng.randint(1, 4)))
    licensed_states = [s for s in STATES if s in licensed]

    sliding_scale = rng.random() < 0.25
    if prescriber:
        fee_min = rng.randrange(120, 401, 10)
    else:
        fee_min = rng.randrange(70, 221, 5)
    fee_max = fee_min + rng.randrange(0, 101, 10)
    if sliding_scale:
        fee_min = max(0, fee_min - rng.randrange(30, 101, 10))
    insurance = [] if rng.random() < 0.2 else _weighted_sample(rng, PAYER_WEIGHTS,
                                                                 rng.randint(1, 6))
    insurance = [p for p in PAYERS if p in set(insurance)]

    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    credentials = rng.choice(CREDENTIALS[provider_type])
    gender = rng.choices(("female", "male", "non-binary", None), weights=(64, 31, 3, 2))[0]
    days = _verified_days_ago(rng)
    focus = ", ".join(c.replace("_", " ") for c in concerns[:3])
    bio = (f"{first} {last}, {credentials}, works with "
           + (" and ".join(a.replace("_", " ") + "s" for a in age_groups[:2]))
           + f" on {focus}." + (f" Approaches: {', '.join(modalities)}." if modalities else ""))
    values = {
        "npi": provider_npi(seed, index),
        "first_name": first, "last_name": last, "credentials": credentials,
        "role": "prescriber" if prescriber else "therapist", "provider_type": provider_type,
        "taxonomy_codes": [rng.choice(TAXONOMY[provider_type])],
        "modalities": modalities, "concerns": [c for c in CONCERN_MODALITIES if c in concerns],
        "age_groups": age_groups, "languages": languages,
        "specialties": _specialties(seed, index, prescriber, concerns), "gender": gender,
        "bio": bio,
        "telehealth": telehealth, "in_person": in_person, "licensed_states": licensed_states,
        "address_line1": clinic.address_line1, "address_line2": None, "city": clinic.city,
        "state": clinic.state, "zip": clinic.zip, "latitude": clinic.latitude,
        "longitude": clinic.longitude, "phone": clinic.phone, "email": None, "website": None,
        "fee_min": fee_min, "fee_max": fee_max, "sliding_scale": sliding_scale,
        "insurance": insurance, "accepting_new_patients": rng.random() < 0.75,
        "accepts_coordinated_care": rng.random() < 0.55,
        "wait_days": min(120, int(rng.expovariate(1 / 14))),
        "last_verified_at": now - dt.timedelta(days=days, minutes=rng.randint(0, 1439)),
    }
    return clinic_index, values
