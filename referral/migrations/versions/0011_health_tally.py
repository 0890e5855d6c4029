"""health tally: the directory-health counts per practice state and clinic, kept current by
triggers on provider (one change row per listing entering or leaving a group) and folded
by referral.health_tally; each listing's open reports kept on it by a trigger on
listing_report; replaces the index of the health figures' full pass

Revision ID: 0011_health_tally
Revises: 0010_reminders_health

The triggers live in the database, not in the models: on SQLite a later migration that
recreates the provider table (batch "move and copy") must create them again.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_health_tally"
down_revision = "0010_reminders_health"
branch_labels = None
depends_on = None

COUNTS = ("listings", "reported", "accepting_new_patients", "never_verified", "open_reports",
          "verified",
          "shown", *[f"newer_{k}" for k in range(1, 13)])
CHANGE_COLUMNS = ("state, clinic_id, last_verified_at, reported, accepting_new_patients, "
                  "open_reports, delta")
#: The columns whose change moves a listing between groups (or in or out of the tally).
WATCHED = ("active", "clinic_id", "state", "last_verified_at", "accepting_new_patients",
           "open_reports")


def _row(side: str, delta: int) -> str:
    return (f"{side}.state, {side}.clinic_id, {side}.last_verified_at, "
            f"{side}.reported_at IS NOT NULL, {side}.accepting_new_patients, "
            f"{side}.open_reports, {delta}")


def _listed(side: str) -> str:
    return f"{side}.active AND {side}.clinic_id IS NOT NULL"


OPEN = "status = 'open'"
OPS = ("insert", "delete", "update")

POSTGRESQL = [
    f"""CREATE FUNCTION listing_report_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.{OPEN} THEN
            UPDATE provider SET open_reports = open_reports - 1 WHERE id = OLD.provider_id;
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.{OPEN} THEN
            UPDATE provider SET open_reports = open_reports + 1 WHERE id = NEW.provider_id;
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER listing_report_insert AFTER INSERT ON listing_report FOR EACH ROW
        WHEN (NEW.{OPEN}) EXECUTE FUNCTION listing_report_count()""",
    f"""CREATE TRIGGER listing_report_delete AFTER DELETE ON listing_report FOR EACH ROW
        WHEN (OLD.{OPEN}) EXECUTE FUNCTION listing_report_count()""",
    f"""CREATE TRIGGER listing_report_update AFTER UPDATE ON listing_report FOR EACH ROW
        WHEN ((OLD.{OPEN}, OLD.provider_id) IS DISTINCT FROM (NEW.{OPEN}, NEW.provider_id))
        EXECUTE FUNCTION listing_report_count()""",
    f"""CREATE FUNCTION health_tally_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND {_listed('OLD')} THEN
            INSERT INTO health_tally_change ({CHANGE_COLUMNS}) VALUES ({_row('OLD', -1)});
        END IF;
        IF TG_OP <> 'DELETE' AND {_listed('NEW')} THEN
            INSERT INTO health_tally_change ({CHANGE_COLUMNS}) VALUES ({_row('NEW', 1)});
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER health_tally_insert AFTER INSERT ON provider FOR EACH ROW
        WHEN ({_listed('NEW')}) EXECUTE FUNCTION health_tally_track()""",
    f"""CREATE TRIGGER health_tally_delete AFTER DELETE ON provider FOR EACH ROW
        WHEN ({_listed('OLD')}) EXECUTE FUNCTION health_tally_track()""",
    f"""CREATE TRIGGER health_tally_update AFTER UPDATE ON provider FOR EACH ROW
        WHEN (({', '.join('OLD.' + c for c in WATCHED)}, OLD.reported_at IS NULL)
              IS DISTINCT FROM
              ({', '.join('NEW.' + c for c in WATCHED)}, NEW.reported_at IS NULL))
        EXECUTE FUNCTION health_tally_track()""",
]

SQLITE = [
    f"""CREATE TRIGGER listing_report_insert AFTER INSERT ON listing_report FOR EACH ROW
        WHEN NEW.{OPEN} BEGIN
            UPDATE provider SET open_reports = open_reports + 1 WHERE id = NEW.provider_id;
        END""",
    f"""CREATE TRIGGER listing_report_delete AFTER DELETE ON listing_report FOR EACH ROW
        WHEN OLD.{OPEN} BEGIN
            UPDATE provider SET open_reports = open_reports - 1 WHERE id = OLD.provider_id;
        END""",
    f"""CREATE TRIGGER listing_report_update AFTER UPDATE ON listing_report FOR EACH ROW
        WHEN (OLD.{OPEN}) IS NOT (NEW.{OPEN}) OR OLD.provider_id IS NOT NEW.provider_id BEGIN
            UPDATE provider SET open_reports = open_reports - 1
                WHERE id = OLD.provider_id AND OLD.{OPEN};
            UPDATE provider SET open_reports = open_reports + 1
                WHERE id = NEW.provider_id AND NEW.{OPEN};
        END""",
    f"""CREATE TRIGGER health_tally_insert AFTER INSERT ON provider FOR EACH ROW
        WHEN {_listed('NEW')} BEGIN
            INSERT INTO health_tally_change ({CHANGE_COLUMNS}) VALUES ({_row('NEW', 1)});
        END""",
    f"""CREATE TRIGGER health_tally_delete AFTER DELETE ON provider FOR EACH ROW
        WHEN {_listed('OLD')} BEGIN
            INSERT INTO health_tally_change ({CHANGE_COLUMNS}) VALUES ({_row('OLD', -1)});
        END""",
    f"""CREATE TRIGGER health_tally_update AFTER UPDATE ON provider FOR EACH ROW
        WHEN {' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in WATCHED)}
             OR (OLD.reported_at IS NULL) IS NOT (NEW.reported_at IS NULL) BEGIN
            INSERT INTO health_tally_change ({CHANGE_COLUMNS})
                SELECT {_row('OLD', -1)} WHERE {_listed('OLD')};
            INSERT INTO health_tally_change ({CHANGE_COLUMNS})
                SELECT {_row('NEW', 1)} WHERE {_listed('NEW')};
        END""",
]


def upgrade():
    op.create_table(
        "health_tally",
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Integer(), server_default="0", nullable=False)
          for name in COUNTS],
        sa.PrimaryKeyConstraint("state", "clinic_id", name=op.f("pk_health_tally")),
    )
    op.create_table(
        "health_tally_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.Column("accepting_new_patients", sa.Boolean(), nullable=False),
        sa.Column("open_reports", sa.Integer(), nullable=False),
        sa.Column("delta", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_tally_change")),
    )
    op.create_table(
        "health_tally_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("stale_after_days", sa.Integer(), nullable=False),
        sa.Column("hidden_after_days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_tally_clock")),
    )
    dialect = op.get_bind().dialect.name
    listed = ("active IS true AND clinic_id IS NOT NULL" if dialect == "postgresql"
              else "active IS 1 AND clinic_id IS NOT NULL")
    op.add_column("provider", sa.Column("open_reports", sa.Integer(), server_default="0",
                                        nullable=False))
    op.execute(f"UPDATE provider SET open_reports = (SELECT count(*) FROM listing_report "
               f"WHERE listing_report.provider_id = provider.id AND listing_report.{OPEN}) "
               f"WHERE id IN (SELECT provider_id FROM listing_report WHERE {OPEN})")
    op.drop_index("ix_provider_health", table_name="provider")
    op.create_index("ix_provider_listed_verified", "provider",
                    ["last_verified_at", "state", "clinic_id"],
                    sqlite_where=sa.text(listed), postgresql_where=sa.text(listed))
    for statement in (POSTGRESQL if dialect == "postgresql" else SQLITE):
        op.execute(statement)
    # the listings already there join the tally as changes; the first fold counts them
    op.execute(f"INSERT INTO health_tally_change ({CHANGE_COLUMNS}) "
               f"SELECT {_row('provider', 1)} FROM provider WHERE {_listed('provider')}")


def downgrade():
    dialect = op.get_bind().dialect.name
    for table, trigger in [("provider", f"health_tally_{op_}") for op_ in OPS] + [
            ("listing_report", f"listing_report_{op_}") for op_ in OPS]:
        op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if dialect == "postgresql"
                                                 else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION health_tally_track()")
        op.execute("DROP FUNCTION listing_report_count()")
    op.drop_index("ix_provider_listed_verified", table_name="provider")
    listed = ("active IS true AND clinic_id IS NOT NULL" if dialect == "postgresql"
              else "active IS 1 AND clinic_id IS NOT NULL")
    op.create_index("ix_provider_health", "provider",
                    ["state", "clinic_id", "last_verified_at", "reported_at",
                     "accepting_new_patients", "id"],
                    sqlite_where=sa.text(listed), postgresql_where=sa.text(listed))
    with op.batch_alter_table("provider") as batch:
        batch.drop_column("open_reports")
    op.drop_table("health_tally_clock")
    op.drop_table("health_tally_change")
    op.drop_table("health_tally")
