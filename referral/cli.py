"""The ``referral`` command line: a Flask CLI group with the project's commands.

``referral init-db``, ``referral clinic create NAME``, ``referral clinic token``,
``referral clinic revoke``, ``referral clinic list``, ``referral seed``,
``referral reindex``, ``referral check-index`` and
Flask's own ``referral run``, ``referral db ...`` (migrations) and ``referral shell``.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy import func, select

from . import clinics
from .errors import DomainError
from .extensions import db
from .models import Provider
from .search_sync import REBUILD_THRESHOLD
from .services import geocoder, search_service


def _domain_errors_as_click(operation, *args, **kwargs):
    """Run an operation; a domain error becomes a CLI error with its message."""
    try:
        return operation(*args, **kwargs)
    except DomainError as error:
        details = "; ".join(f"{field}: {' '.join(map(str, messages))}"
                            for field, messages in error.errors.items()
                            if field != "rows" and isinstance(messages, list))
        raise click.ClickException(error.message + (f" ({details})" if details else "")) \
            from None


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or migrate the database to the latest schema (safe to repeat)."""
    upgrade(revision="heads")  # every branch of the migrations
    click.echo("Database is at the latest schema.")


@click.group("clinic")
def clinic_group():
    """Manage clinics and their API tokens."""


@clinic_group.command("create")
@click.argument("name")
@click.option("--email", help="Contact email.")
@click.option("--phone", help="Contact phone (10 digits).")
@click.option("--npi", "organization_npi", help="Organization NPI (type 2).")
@with_appcontext
def clinic_create(name, email, phone, organization_npi):
    """Create a clinic and print its first API token (shown only this once)."""
    clinic, token = _domain_errors_as_click(clinics.create_clinic, name, email=email,
                                            phone=phone, organization_npi=organization_npi)
    click.echo(f"Created clinic {clinic.id}: {clinic.name}")
    click.echo("API token (store it now; it is not shown again):")
    click.echo(token)


@clinic_group.command("token")
@click.argument("clinic_id", type=int)
@click.option("--label", help="What the token is for.")
@with_appcontext
def clinic_token(clinic_id, label):
    """Issue another API token for a clinic (printed once)."""
    clinic = _domain_errors_as_click(clinics.clinic_by_id, clinic_id)
    row, token = clinics.new_token(clinic, label=label)
    click.echo(f"Token {row.id} ({row.prefix}...) for clinic {clinic.id}:")
    click.echo(token)


@clinic_group.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def clinic_revoke(token_id):
    """Revoke an API token by its id (see ``referral clinic list``)."""
    row = _domain_errors_as_click(clinics.revoke_clinic_token, token_id)
    click.echo(f"Token {row.id} ({row.prefix}...) revoked.")


@clinic_group.command("list")
@with_appcontext
def clinic_list():
    """List clinics with their listing counts and tokens (prefixes only)."""
    for clinic, count in clinics.clinics_with_counts():
        click.echo(f"{clinic.id}\t{clinic.name}\t{count} listings")
        for token in clinics.clinic_tokens(clinic):
            state = "revoked" if token.revoked_at else "active"
            click.echo(f"\ttoken {token.id} {token.prefix}... {state} {token.label or ''}")


@clinic_group.command("upload")
@click.argument("clinic_id", type=int)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate only; write nothing.")
@click.option("--verify", is_flag=True, help="Also attest every listing as current.")
@with_appcontext
def clinic_upload(clinic_id, path, dry_run, verify):
    """Upload a clinic's listings from a CSV (or JSON array) file, all or nothing."""
    import json

    from .bulk import upload_listings

    clinic = _domain_errors_as_click(clinics.clinic_by_id, clinic_id)
    with open(path, "rb") as handle:
        content = handle.read()
    if path.lower().endswith(".json"):
        try:
            source = {"rows": json.loads(content)}
        except (ValueError, UnicodeDecodeError) as error:
            raise click.ClickException(f"Not a JSON file: {error}") from None
    else:
        source = {"csv": content}
    try:
        result = upload_listings(clinic, **source, max_rows=current_app.config["BULK_MAX_ROWS"],
                                 geocoder=geocoder(), dry_run=dry_run, verify=verify)
    except DomainError as error:
        for problem in error.errors.get("rows", []):
            click.echo(f"row {problem['row']}, {problem['field']}: {problem['message']}",
                       err=True)
        raise click.ClickException(error.message) from None
    click.echo(f"{result.created} created, {result.updated} updated, "
               f"{result.unchanged} unchanged" + (" (dry run: nothing written)" if dry_run else ""))
    if not dry_run:
        _bring_index_up_to_date()


@click.command("seed")
@click.option("--count", default=5000, show_default=True, type=click.IntRange(1, 5_000_000),
              help="How many providers to generate.")
@click.option("--seed", "seed", default=1, show_default=True, type=int,
              help="Random seed: the same seed gives the same directory.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has providers.")
@with_appcontext
def seed_command(count, seed, if_empty):
    """Generate demo clinics and providers (deterministic; safe to interrupt and rerun)."""
    from seeds.load import seed_directory

    if if_empty and db.session.scalar(select(func.count()).select_from(Provider)):
        click.echo("The database has providers already; not seeding.")
        return
    with click.progressbar(length=count, label=f"Seeding {count} providers",
                           show_pos=True, show_eta=True) as bar:
        result = seed_directory(count, seed, progress=bar.update)
    click.echo(f"{result['created']} providers created, {result['skipped']} already present, "
               f"{result['clinics']} clinics.")
    _bring_index_up_to_date()


def _bring_index_up_to_date() -> None:
    """Apply pending listing changes to the search index (rebuilding it when far behind)."""
    service = search_service()
    with db.engine.connect() as connection:
        if service.pending(connection) > REBUILD_THRESHOLD:
            _reindex(service, connection, procs=1)
        elif not service.sync(connection):
            click.echo("The search index is busy; it will catch up by itself.")


def _reindex(service, connection, procs: int) -> None:
    total = db.session.scalar(select(func.count()).select_from(Provider))
    with click.progressbar(length=total, label="Indexing providers", show_pos=True,
                           show_eta=True) as bar:
        count = service.rebuild(connection, progress=bar.update, procs=procs)
    click.echo(f"Indexed {count} active providers.")


@click.command("reindex")
@click.option("--procs", default=2, show_default=True, type=click.IntRange(1, 16),
              help="Indexing processes.")
@with_appcontext
def reindex_command(procs):
    """Rebuild the search index from the database (the old one serves until it is done)."""
    with db.engine.connect() as connection:
        _reindex(search_service(), connection, procs)


@click.command("check-index")
@click.option("--repair/--no-repair", default=True, show_default=True,
              help="Fix the differences found.")
@with_appcontext
def check_index_command(repair):
    """Compare the search index with the database, report differences and repair them."""
    with db.engine.connect() as connection:
        report = search_service().check(connection, repair=repair)
    click.echo(f"Database: {report['database']} listed listings; index: {report['indexed']}.")
    for kind in ("missing", "extra", "outdated"):
        ids = report[kind]
        shown = ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")
        click.echo(f"{kind}: {len(ids)}" + (f" ({shown})" if ids else ""))
    if report["repaired"]:
        click.echo(f"Repaired {report['repaired']} listings; the index matches the database.")
    elif any(report[k] for k in ("missing", "extra", "outdated")):
        raise SystemExit(1)
    else:
        click.echo("The index matches the database.")


def _print_summary(counts) -> None:
    click.echo(f"Rows read: {counts.pop('rows', 0)}")
    for key in sorted(counts, key=lambda k: (k.startswith("skipped"), k)):
        click.echo(f"  {key}: {counts[key]}")


def _run_import(records, dry_run: bool, **options) -> None:
    """Import with the index sync after each batch deferred, then catch the index up."""
    from .nppes_import import import_records

    with search_service().deferred_sync():
        counts = import_records(records, dry_run=dry_run, **options)
    _report_import(counts, dry_run)


def _report_import(counts, dry_run: bool) -> None:
    """Print an import's counts, then catch the index up (unless it was a dry run)."""
    _print_summary(counts)
    if dry_run:
        click.echo("Dry run: nothing was written.")
    else:
        _bring_index_up_to_date()


@click.command("import-nppes")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--state", "states", multiple=True, help="Only practices in this state (repeat).")
@click.option("--limit", type=click.IntRange(min=1), help="Read at most this many rows.")
@click.option("--dry-run", is_flag=True, help="Classify and count; write nothing.")
@with_appcontext
def import_nppes_command(path, states, limit, dry_run):
    """Import therapists, prescribers and behavioral-health clinics from an NPPES data file.

    Streams the file in constant memory, commits in batches (an interrupted run can
    simply be run again), never overwrites what clinics entered.
    """
    import os

    from .nppes import HeaderError
    from .nppes_import import import_file
    from .vocab import VOCABULARIES

    wanted = set()
    for state in states:
        code = VOCABULARIES["state"].lookup(state)
        if code is None:
            raise click.BadParameter(f"unknown state {state!r}", param_hint="--state")
        wanted.add(code)
    with click.progressbar(length=os.path.getsize(path), label="Importing NPPES rows",
                           show_eta=True) as bar, search_service().deferred_sync():
        try:
            counts = import_file(path, states=wanted or None, limit=limit, dry_run=dry_run,
                                 progress=bar.update)
        except HeaderError as error:
            raise click.ClickException(str(error)) from None
    _report_import(counts, dry_run)


@click.command("import-npi-json")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Classify and count; write nothing.")
@with_appcontext
def import_npi_json_command(path, dry_run):
    """Import saved NPI Registry API v2.1 responses with the same rules as import-nppes."""
    import json

    from .nppes import load_registry_json

    try:
        records = list(load_registry_json(path))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise click.ClickException(f"Not an NPI Registry response: {error}") from None
    _run_import(records, dry_run)


@click.command("expire-referrals")
@with_appcontext
def expire_referrals_command():
    """Expire referrals unanswered for 14 days (safe to run repeatedly, e.g. from cron)."""
    from .referrals import expire_referrals

    click.echo(f"{expire_referrals()} referrals expired.")


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 256),
              help="Deliveries in flight at once (default WORKER_CONCURRENCY).")
@click.option("--report-every", default=10.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds between progress lines in the log.")
@with_appcontext
def worker_command(concurrency, report_every):
    """Deliver notifications (webhooks, emails) until stopped (Ctrl-C or SIGTERM).

    Several workers may run on several nodes against one PostgreSQL database; each
    attempt is made by one of them. Progress goes to the log (standard error).
    """
    import logging
    import signal
    import threading

    from flask.logging import default_handler

    from .delivery import Worker

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The app's logger is the package's ("referral"): Flask's own handler on it would print
    # every record of referral.* a second time, beside the root handler set up above.
    current_app.logger.removeHandler(default_handler)
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        signal.signal(getattr(signal, name), lambda *_: stop.set())
    Worker(current_app._get_current_object(), concurrency=concurrency).run(
        stop, report_every=report_every)


@click.command("new-key")
def new_key_command():
    """Print a new encryption key for ENCRYPTION_KEYS (put it first to rotate)."""
    from .crypto import new_key

    click.echo(new_key())


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Re-encrypt every message and webhook secret with the first ENCRYPTION_KEYS key."""
    from .messages import rotate_keys

    click.echo(f"{rotate_keys()} values re-encrypted with the first key; older keys may "
               "now be removed from ENCRYPTION_KEYS.")


@click.command("remind-stale")
@with_appcontext
def remind_stale_command():
    """Send this week's listing digests and the unanswered-referral reminders (safe to
    repeat: each digest once per clinic and week, each referral reminded once)."""
    from .reminders import send_reminders

    digests, referrals = send_reminders()
    click.echo(f"Sent {digests} listing digests and {referrals} unanswered-referral "
               "reminders.")


@click.group("health")
def health_group():
    """The health tally behind the directory-health figures (``referral.health_tally``)."""


@health_group.command("fold")
@with_appcontext
def health_fold_command():
    """Fold the listing changes into the health tally now (the delivery workers do this
    every minute)."""
    from . import health_tally

    click.echo(f"Folded {health_tally.fold(*health_tally.windows())} changes.")


@health_group.command("check")
@click.option("--repair/--no-repair", default=False, show_default=True,
              help="Count the tally again from the listings if it differs.")
@with_appcontext
def health_check_command(repair):
    """Compare the health tally with a recount of the listings; exit 1 if they differ
    (unless repaired)."""
    from . import health_tally

    differences = health_tally.check(*health_tally.windows())
    for difference in differences[:20]:
        click.echo(f"state {difference['state'] or '-'}, clinic {difference['clinic_id']}: "
                   f"tally {difference['tally']}, recount {difference['recount']}")
    if not differences:
        click.echo("The health tally matches the listings.")
    elif repair:
        groups = health_tally.rebuild(*health_tally.windows())
        click.echo(f"{len(differences)} groups differed; counted again ({groups} groups).")
    else:
        raise SystemExit(1)


def _password_or_new(password: str | None) -> tuple[str, bool]:
    import secrets

    return (password, False) if password else (secrets.token_urlsafe(18), True)


@click.group("operator")
def operator_group():
    """Manage the directory's operators (its own staff: they approve clinics and claims)."""


@operator_group.command("create")
@click.argument("email")
@click.option("--password", envvar="REFERRAL_NEW_PASSWORD",
              help="The password (default: a random one, printed once).")
@with_appcontext
def operator_create(email, password):
    """Make an operator who signs in on /clinic/sign-in and decides on /operator."""
    from . import accounts

    password, generated = _password_or_new(password)
    user = _domain_errors_as_click(accounts.create_user, None, email, "operator", password,
                                   confirmed=True)
    db.session.flush()
    accounts.log_activity("operator_created", None, {"user_id": user.id})
    db.session.commit()
    click.echo(f"Operator {user.email} created." +
               (f" Password (shown once): {password}" if generated else ""))


@operator_group.command("decide-claim")
@click.argument("claim_id", type=click.IntRange(1, 2_147_483_647))
@click.argument("decision", type=click.Choice(["approve", "reject"]))
@click.option("--reason", help="Why (needed to reject).")
@with_appcontext
def operator_decide_claim(claim_id, decision, reason):
    """Approve or reject a pending claim from the shell (audited as the CLI)."""
    from . import claims

    claim = _domain_errors_as_click(claims.decide_claim, claim_id, decision == "approve",
                                    reason)
    click.echo(f"Claim {claim.id} ({claim.npi}) is {claim.status}.")


@operator_group.command("decide-report")
@click.argument("report_id", type=click.IntRange(1, 2_147_483_647))
@click.argument("decision", type=click.Choice(["confirm", "dismiss"]))
@with_appcontext
def operator_decide_report(report_id, decision):
    """Confirm or dismiss a patient's report on a listing (audited as the CLI); a
    confirmed no_longer_practicing report deactivates the listing."""
    from . import reports

    report = _domain_errors_as_click(reports.decide, report_id, decision)
    click.echo(f"Report {report.id} on listing {report.provider_id} is {report.status}.")


@click.group("user")
def user_group():
    """Manage the people of clinics."""


@user_group.command("create")
@click.argument("clinic_id", type=click.IntRange(1, 2_147_483_647))
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "staff"]), default="admin",
              show_default=True)
@click.option("--password", envvar="REFERRAL_NEW_PASSWORD",
              help="The password (default: a random one, printed once).")
@click.option("--or-reset", is_flag=True,
              help="If the email has an account already, give it a new password instead.")
@with_appcontext
def user_create(clinic_id, email, role, password, or_reset):
    """Add a person (email confirmed) to a clinic; prints a generated password once."""
    from . import accounts

    clinic = _domain_errors_as_click(clinics.clinic_by_id, clinic_id)
    password, generated = _password_or_new(password)
    existing = accounts.user_by_email(email)
    if existing is not None and or_reset:
        if existing.clinic_id != clinic.id:
            raise click.ClickException("That email belongs to another clinic's account.")
        problem = accounts.password_problem(password, existing.email)
        if problem:
            raise click.ClickException(problem)
        existing.password_hash = accounts.hash_password(password)
        accounts.log_activity("password_set", clinic.id, {"user_id": existing.id})
        db.session.commit()
        user = existing
    else:
        user = _domain_errors_as_click(accounts.create_user, clinic, email, role, password,
                                       confirmed=True)
        db.session.flush()
        accounts.log_activity("user_added", clinic.id, {"user_id": user.id, "role": role})
        db.session.commit()
    click.echo(f"{user.email} ({user.role}) of clinic {clinic.id}: {clinic.name}." +
               (f" Password (shown once): {password}" if generated else ""))


def register_cli(app: Flask) -> None:
    """Add the project's commands to the app's CLI."""
    for command in (init_db_command, clinic_group, seed_command, reindex_command,
                    check_index_command, expire_referrals_command, import_nppes_command,
                    import_npi_json_command, worker_command, new_key_command,
                    rotate_keys_command, remind_stale_command, operator_group, user_group,
                    health_group):
        app.cli.add_command(command)


def _create_app():
    from . import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, help="Mental-health provider directory.")


if __name__ == "__main__":
    main()
