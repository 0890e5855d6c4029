"""Shared benchmark set-up: a seeded database and index per size, and the query sets.

Data lives in ``bench/data/n<count>/`` (git-ignored): a SQLite file and an index
directory, built once by the seed generator and reused by later runs.
"""

from __future__ import annotations

import os
import random
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: Where benchmark databases live (``BENCH_DATA`` lets an exported older tree use them).
DATA = os.environ.get("BENCH_DATA") or os.path.join(HERE, "data")
SEED = 1


POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def data_dir(count: int, database: str = "sqlite") -> str:
    """Where the benchmark database (SQLite) and index of ``count`` providers live."""
    return os.path.join(DATA, f"n{count}" if database == "sqlite" else f"pg-n{count}")


def database_url(count: int, database: str = "sqlite") -> str:
    """The benchmark database: a SQLite file, or a schema of its own on PostgreSQL."""
    if database == "sqlite":
        return "sqlite:///" + os.path.join(data_dir(count), "referral.sqlite3")
    return postgres_schema(f"bench{count}")


def postgres_schema(schema: str, fresh: bool = False) -> str:
    """The URL of a schema of its own on the benchmark PostgreSQL server (``fresh``: dropped
    and made again, empty)."""
    from sqlalchemy import create_engine, text

    from config import normalize_database_url

    url = normalize_database_url(POSTGRES)
    engine = create_engine(url)
    with engine.begin() as connection:
        if fresh:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    engine.dispose()
    return url + f"?options=-csearch_path%3D{schema}"


def bench_app(count: int, database: str = "sqlite"):
    """An app on the benchmark database of ``count`` providers (created and seeded if needed)."""
    directory = data_dir(count, database)
    os.makedirs(directory, exist_ok=True)
    os.environ["REFERRAL_INSTANCE_PATH"] = directory
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from referral import create_app
    from referral.extensions import db
    from referral.models import Provider
    from seeds.load import seed_directory

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url(count, database),
        "INDEX_DIR": os.path.join(directory, "index"),
        "SEARCH_SYNC_ON_COMMIT": False,
        "RATE_LIMITS": False,
    })
    with app.app_context():
        upgrade(revision="heads")
        have = db.session.scalar(select(func.count()).select_from(Provider))
        if have < count:
            started = time.perf_counter()
            print(f"seeding {count - have} providers ...", flush=True)
            seed_directory(count, SEED)
            print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return app


def index_current(app) -> None:
    """Bring the benchmark's search index up to its database (built when there is none)."""
    from referral.extensions import db
    from referral.services import search_service

    state = search_service(app).state
    with app.app_context(), db.engine.connect() as connection:
        if state.text.current_name() is None:
            state.rebuild(connection)
        else:
            state.sync_text(connection, allow_rebuild=True)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summary(seconds: list[float]) -> dict:
    """Median, p95 and max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": statistics.median(ms), "p95": percentile(ms, 0.95),
            "max": max(ms)}


def structured_queries(count: int, seed: int = 7) -> list[dict]:
    """Structured + distance searches: modality, telehealth-or-radius at a real ZIP,
    max fee, insurance, accepting new patients (the default)."""
    from seeds.generator import PAYER_WEIGHTS, weighted_zips

    rng = random.Random(seed)
    places, cumulative = weighted_zips()
    common = ("CBT", "DBT", "EMDR", "ACT", "IPT", "ERP", "CPT", "MBCT")
    payers, weights = list(PAYER_WEIGHTS), list(PAYER_WEIGHTS.values())
    queries = []
    for _ in range(count):
        place = rng.choices(places, cum_weights=cumulative)[0]
        queries.append({
            "zip": place.zip,
            "modality": rng.sample(common, rng.randint(1, 2)),
            "max_fee": rng.choice((100, 150, 200, 250)),
            "insurance": [rng.choices(payers, weights=weights)[0]],
            "radius_miles": rng.choice((10.0, 25.0, 50.0)),
        })
    return queries


def name_queries(app, count: int, seed: int = 11) -> list[str]:
    """Free-text name searches: full names, last names and last names with a typo."""
    from sqlalchemy import select

    from referral.extensions import db
    from referral.models import Provider

    rng = random.Random(seed)
    with app.app_context():
        top = db.session.scalar(select(Provider.id).order_by(Provider.id.desc()).limit(1))
        ids = [rng.randint(1, top) for _ in range(count)]
        rows = {p.id: p for p in db.session.scalars(select(Provider).where(Provider.id.in_(ids)))}
    queries = []
    for provider_id in ids:
        provider = rows.get(provider_id) or next(iter(rows.values()))
        kind = rng.random()
        if kind < 0.5:
            queries.append(f"{provider.first_name} {provider.last_name}")
        elif kind < 0.8:
            queries.append(provider.last_name)
        else:
            name = provider.last_name
            cut = rng.randrange(1, len(name))
            queries.append(name[:cut] + name[cut + 1:])
    return queries


#: Free text as patients type it (read for vocabulary first, the rest goes to the text index).
PATIENT_TEXTS = (
    "grief counseling", "cbt for anxiety teenager", "therapist for depression",
    "couples therapy", "trauma emdr", "someone who speaks spanish for my son",
    "adhd medication adult", "panic attacks", "ocd exposure therapy", "eating disorder help",
    "bipolar psychiatrist", "anxiety and insomnia", "postpartum depression",
    "lgbtq affirming therapist", "substance use counselor", "dbt for teens",
    "child psychologist autism", "ptsd veterans", "medication management",
    "mindfulness for stress at work", "family therapy", "woman therapist anxiety",
    "sleep problems", "anger management", "help with my depression and anxiety",
)

#: The query families of issue 17, in the order the benchmark reports them.
FAMILIES = ("free_text_zip", "free_text_national", "concern_national", "radius_100_by_distance",
            "deep_pages_50mi", "telehealth_state_modality_fee", "every_filter")


def family_queries(count: int, seed: int = 17) -> dict[str, list[dict]]:
    """``count`` search parameter sets per family of ``FAMILIES`` (before validation)."""
    from referral.vocab import AGE_GROUPS, CONCERNS
    from seeds.generator import PAYER_WEIGHTS, weighted_zips

    rng = random.Random(seed)
    places, cumulative = weighted_zips()
    common = ("CBT", "DBT", "EMDR", "ACT", "IPT", "ERP", "CPT", "MBCT")
    payers, weights = list(PAYER_WEIGHTS), list(PAYER_WEIGHTS.values())

    def place():
        return rng.choices(places, cum_weights=cumulative)[0]

    families: dict[str, list[dict]] = {name: [] for name in FAMILIES}
    for _ in range(count):
        families["free_text_zip"].append({"q": rng.choice(PATIENT_TEXTS), "zip": place().zip})
        families["free_text_national"].append({"q": rng.choice(PATIENT_TEXTS)})
        families["concern_national"].append({"concern": [rng.choice(CONCERNS)]})
        families["radius_100_by_distance"].append(
            {"zip": place().zip, "radius_miles": 100.0, "sort": "distance"})
        families["deep_pages_50mi"].append(
            {"zip": place().zip, "radius_miles": 50.0, "page": rng.randint(5, 40)})
        families["telehealth_state_modality_fee"].append({
            "state": place().state, "telehealth": True, "in_person": False,
            "modality": rng.sample(common, rng.randint(1, 2)),
            "max_fee": rng.choice((100, 150, 200, 250))})
        families["every_filter"].append({
            "zip": place().zip, "radius_miles": 50.0, "modality": rng.sample(common, 2),
            "concern": [rng.choice(CONCERNS)],
            "insurance": [rng.choices(payers, weights=weights)[0]],
            "language": rng.choice(("en", "en", "es")), "age_group": rng.choice(AGE_GROUPS),
            "gender": rng.choice(("female", "male")), "role": "therapist",
            "max_fee": rng.choice((150, 200, 250)), "sliding_scale": rng.random() < 0.3,
            "accepts_coordinated_care": True})
    return families
