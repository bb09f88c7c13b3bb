"""Migrations as a controlled, zero-downtime step (docs/migrations.md).

- No model change is missing its migration (`makemigrations --check`).
- Every migration of the project's apps passes django-migration-linter, extended with
  the checks this project adds, with warnings treated as errors. The only exceptions
  are listed below, each with its reason; an exception that is no longer needed fails.
- Every hand-written SQL or Python operation is reviewed (listed with a reason) and
  reversible.
- On a scratch database: every migration reverses down to zero and forward again to the
  same schema; `manage.py migrate` runs under a lock_timeout, so a migration that cannot
  get its lock fails fast instead of stalling the API behind it, and deploy/migrate.sh
  tries again; with DATABASE_ADMIN_URL the script migrates as the owner role and leaves
  the ledger append-only for the application role.

The scratch databases (testing/scratch.py) are created and dropped on an admin
connection and migrated by `manage.py` in subprocesses, exactly as the deploy step runs
it; the suite's own test database is never touched by them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.migrations import RunPython, RunSQL
from django_migration_linter import MigrationLinter
from django_migration_linter.sql_analyser import PostgresqlAnalyser, analyse_sql_statements
from django_migration_linter.sql_analyser.base import Check, CheckMode, CheckType
from psycopg import sql

from testing.scratch import (
    BASE_DIR,
    SUBPROCESS_TIMEOUT,
    Scratch,
    admin_connection,
    applied,
    database_url,
    manage,
    migrate,
    run_in_project,
    schema,
    subprocess_env,
)
from wallets.models import Wallet

PROJECT_APPS = ("users", "wallets", "transfers", "corrections", "audit", "events", "webhooks", "dashboard")
PROJECT_TABLE = re.compile(r"^(users|wallets|transfers|corrections|audit|events|webhooks|dashboard)_")


# --- the lint rules -------------------------------------------------------------------


def _created_in(statements: list[str], table: str) -> bool:
    return any(s.startswith(f"CREATE TABLE {table}") for s in statements)


def has_validated_constraint_on_existing_table(sql_statements: list[str], **kwargs) -> bool:
    """ADD CONSTRAINT ... CHECK / FOREIGN KEY without NOT VALID on a table that already exists.

    PostgreSQL then scans the whole table while holding its lock (ACCESS EXCLUSIVE for a
    CHECK; SHARE ROW EXCLUSIVE on both tables for a foreign key). Add it NOT VALID and
    VALIDATE CONSTRAINT in a later migration, which only takes SHARE UPDATE EXCLUSIVE.
    """
    for statement in sql_statements:
        match = re.search(r'ALTER TABLE ("[^"]+"|\S+) ADD CONSTRAINT \S+ (CHECK|FOREIGN KEY)', statement)
        if match and "NOT VALID" not in statement and not _created_in(sql_statements, match.group(1)):
            return True
        # A column added with its key inline (Django's AddField of a ForeignKey) is validated too.
        match = re.search(r'ALTER TABLE ("[^"]+"|\S+) ADD COLUMN .* REFERENCES ', statement)
        if match and not _created_in(sql_statements, match.group(1)):
            return True
    return False


class ProjectAnalyser(PostgresqlAnalyser):
    """django-migration-linter's PostgreSQL checks plus the ones it does not make."""

    migration_checks = [
        *PostgresqlAnalyser.migration_checks,
        Check(
            code="ADD_CONSTRAINT_VALIDATED",
            fn=has_validated_constraint_on_existing_table,
            message="ADD CONSTRAINT (CHECK or FOREIGN KEY) scans an existing table under lock; "
            "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
            mode=CheckMode.TRANSACTION,
            type=CheckType.ERROR,
        ),
    ]


# Each exception: the migration, the linter codes it may raise, and why that is safe.
LINT_EXCEPTIONS: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("transfers", "0002_initial"): (
        frozenset(
            {"NOT_NULL", "ADD_UNIQUE", "CREATE_INDEX", "CREATE_INDEX_EXCLUSIVE", "ADD_CONSTRAINT_VALIDATED"}
        ),
        "The second half of the app's initial migration: makemigrations split it from 0001 to "
        "break the transfers <-> wallets dependency cycle. Both shipped in the first release, "
        "before any code used these tables, so the columns, indexes and constraints were added "
        "to empty tables nobody was reading or writing.",
    ),
    ("wallets", "0003_holds_limits_review"): (
        frozenset({"ALTER_COLUMN"}),
        "kind and status widen from varchar(8) to varchar(12) / varchar(16). PostgreSQL only "
        "updates the catalogue for a longer varchar (no rewrite, no scan), and the running code "
        "writes values that fit both widths.",
    ),
    ("wallets", "0004_adjustment_wallet_unique"): (
        frozenset({"ADD_UNIQUE"}),
        "A partial unique index on currency for adjustment wallets, built CONCURRENTLY. The "
        "adjustment kind is new in 0003, so no existing row can violate it, and the code "
        "before this release never creates one.",
    ),
    ("users", "0002_username_ci_unique"): (
        frozenset({"ADD_UNIQUE"}),
        "A unique index on lower(username), built CONCURRENTLY (no write lock) after the "
        "migration has checked that no two existing usernames differ only in case. The code "
        "already running answers the IntegrityError a case duplicate now raises with a 400.",
    ),
}

# Hand-written operations the linter cannot see into. Each was reviewed for its locks.
REVIEWED_RAW_OPERATIONS: dict[tuple[str, str], str] = {
    ("webhooks", "0002_cursor_and_rules"): (
        "Tables created by 0001 in the same deploy, still empty: inserts the dispatcher's cursor "
        "row (reading max(sequence) of events_event: an index-only read, ACCESS SHARE), creates "
        "a plpgsql function and three triggers on the new webhook tables (no other table "
        "locked). Reverse SQL drops the triggers and the function and deletes the row."
    ),
    ("transfers", "0003_ledger_invariants"): (
        "Creates plpgsql functions and append-only / deferred constraint triggers. CREATE "
        "TRIGGER takes SHARE ROW EXCLUSIVE on transfers_transfer, transfers_ledgerentry and "
        "wallets_wallet for an instant (no scan, no rewrite); lock_timeout bounds the wait. "
        "Reverse SQL drops exactly what it created."
    ),
    ("transfers", "0005_ledger_error_fields"): (
        "CREATE OR REPLACE FUNCTION of the three ledger check functions (same checks, richer "
        "errors). Replacing a function locks no table; triggers pick the new body up at their "
        "next call. Reverse SQL restores the bodies 0003 created."
    ),
    ("transfers", "0007_holds_refunds"): (
        "Adds transfers_transfer.refund_of_id (nullable, no default: catalogue only) and its "
        "foreign key NOT VALID (no scan; SHARE ROW EXCLUSIVE on transfers_transfer for an "
        "instant); replaces the two ledger check functions (no table lock) and creates the hold "
        "functions and triggers (SHARE ROW EXCLUSIVE on transfers_hold and wallets_wallet for an "
        "instant, no scan). Reverse SQL drops what it created and restores 0005's functions."
    ),
    ("transfers", "0009_validate_constraints"): (
        "VALIDATE CONSTRAINT of refund_of's foreign key: a scan under SHARE UPDATE EXCLUSIVE "
        "(reads and writes go on) and ROW SHARE on the referenced table. Its reverse is a no-op: "
        "unvalidating is not a thing, and 0007's reverse drops the key."
    ),
    ("transfers", "0011_ledger_chain"): (
        "Replaces the ledger entries' append-only trigger with one that also lets a missing "
        "entry_hash be set once (DROP/CREATE TRIGGER: SHARE ROW EXCLUSIVE on transfers_ledgerentry "
        "for an instant, no scan), creates the wallet head guard (the same on wallets_wallet) and "
        "the checkpoint tables' append-only triggers (tables created in the same migration). "
        "Reverse SQL drops them and restores the plain append-only trigger."
    ),
    ("transfers", "0013_held_history"): (
        "Creates the held-history trigger on wallets_wallet and the append-only trigger on "
        "transfers_heldchange (a table created in the same migration): SHARE ROW EXCLUSIVE, no "
        "scan. The lock on wallets_wallet lasts until commit, so hold changes wait while the "
        "history of existing wallets is filled from transfers_hold (one scan of the holds); "
        "lock_timeout bounds the wait for the lock. Reverse SQL drops the triggers and function."
    ),
    ("audit", "0002_append_only"): (
        "One CREATE TRIGGER on audit_auditevent: SHARE ROW EXCLUSIVE for an instant, no scan. "
        "Reverse SQL drops it."
    ),
    ("events", "0002_append_only"): (
        "One CREATE TRIGGER on events_event, a table created in 0001 of the same release: SHARE "
        "ROW EXCLUSIVE for an instant, no scan. It reuses audit.0002's ledger_reject_change(). "
        "Reverse SQL drops the trigger."
    ),
    ("corrections", "0002_decisions_final"): (
        "One plpgsql function and one CREATE TRIGGER on corrections_adjustmentproposal, a table "
        "created in 0001 of the same release: SHARE ROW EXCLUSIVE for an instant, no scan. "
        "Reverse SQL drops exactly what it created."
    ),
    ("corrections", "0003_operator_groups"): (
        "RunPython that inserts two auth groups, the app's content type and its three "
        "permissions if missing (get_or_create, as post_migrate would): a few rows in "
        "auth_group, auth_permission and auth_group_permissions, no table locks beyond "
        "ROW EXCLUSIVE. Its reverse deletes the two groups."
    ),
    ("users", "0002_username_ci_unique"): (
        "RunPython that only reads: it groups users_user by lower(username) (one scan, no "
        "locks beyond ACCESS SHARE) and stops the migration, naming the accounts, if any "
        "two usernames differ only in case. Its reverse is a no-op."
    ),
}


def project_migrations(linter: MigrationLinter):
    found = linter.migration_loader.disk_migrations
    return sorted((key, migration) for key, migration in found.items() if key[0] in PROJECT_APPS)


@pytest.fixture
def linter(db) -> MigrationLinter:
    linter = MigrationLinter(include_apps=PROJECT_APPS, no_cache=True, no_output=True)
    linter.sql_analyser_class = ProjectAnalyser
    return linter


# --- makemigrations --check -----------------------------------------------------------


def makemigrations_check() -> str:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    try:
        output = makemigrations_check()
    except SystemExit as exc:
        pytest.fail(f"makemigrations --check found model changes without a migration (exit {exc.code})")
    assert "No changes detected" in output


@pytest.mark.django_db
def test_makemigrations_check_notices_a_model_change():
    field = Wallet._meta.get_field("name")
    original = field.max_length
    field.max_length = original + 1
    try:
        with pytest.raises(SystemExit) as exc:
            makemigrations_check()
    finally:
        field.max_length = original
    assert exc.value.code == 1


# --- the linter -----------------------------------------------------------------------


def test_every_project_migration_passes_the_linter(linter):
    problems, linted = [], []
    for (app, name), migration in project_migrations(linter):
        allowed = LINT_EXCEPTIONS.get((app, name), (frozenset(), ""))[0]
        linter.exclude_migration_tests = list(allowed)
        errors, ignored, warnings = analyse_sql_statements(
            ProjectAnalyser, linter.get_sql(app, name), list(allowed)
        )
        data_errors, data_ignored, data_warnings = linter.analyse_data_migration(migration)
        # Warnings (a plain CREATE INDEX on an existing table, RunSQL without reverse) fail too.
        for issue in errors + warnings + data_errors + data_warnings:
            problems.append(f"{app}.{name}: {issue.code}: {issue.message} (table {issue.table})")
        unused = allowed - {issue.code for issue in ignored + data_ignored}
        if unused:
            problems.append(f"{app}.{name}: exception(s) no longer needed, remove them: {sorted(unused)}")
        linted.append((app, name))

    assert {app for app, _ in linted} == set(PROJECT_APPS)
    assert not problems, "\n".join(problems)


def test_lint_exceptions_name_initial_migrations_or_concurrent_unique_indexes(linter):
    migrations = dict(project_migrations(linter))
    for key, (codes, reason) in LINT_EXCEPTIONS.items():
        assert key in migrations, f"exception for a migration that does not exist: {key}"
        assert codes and len(reason) > 40
        if migrations[key].initial:
            continue  # new, empty tables: the reason only holds for the initial release
        # Later on, two waivers: ADD_UNIQUE for a unique index built CONCURRENTLY (the linter
        # flags any new unique index; docs/migrations.md's recipe builds it this way), and
        # ALTER_COLUMN for a varchar made longer (a catalogue-only change in PostgreSQL).
        assert codes <= {"ADD_UNIQUE", "ALTER_COLUMN"}, (
            f"{key}: only ADD_UNIQUE and ALTER_COLUMN may be waived after the first release"
        )
        statements = [s for s in linter.get_sql(*key) if not s.startswith("--")]
        if "ALTER_COLUMN" in codes:
            assert_only_varchars_widen(linter, key, statements)
        if "ADD_UNIQUE" not in codes:
            continue
        uniques = [s for s in statements if re.search(r"\bUNIQUE\b", s)]
        assert uniques, f"{key} is excused ADD_UNIQUE but adds no unique index"
        assert all(s.startswith("CREATE UNIQUE INDEX CONCURRENTLY ") for s in uniques), uniques
        assert not migrations[key].atomic


def assert_only_varchars_widen(linter: MigrationLinter, key: tuple[str, str], statements: list[str]) -> None:
    """Every ALTER COLUMN of the migration makes a varchar longer than it was before it."""
    before = linter.migration_loader.project_state(key, at_end=False)
    altered = [s for s in statements if " ALTER COLUMN " in s]
    assert altered, f"{key} is excused ALTER_COLUMN but alters no column"
    for statement in altered:
        match = re.fullmatch(r'ALTER TABLE "(\w+)" ALTER COLUMN "(\w+)" TYPE varchar\((\d+)\);', statement)
        assert match, f"{key}: not a varchar widening: {statement}"
        table, column, length = match.group(1), match.group(2), int(match.group(3))
        model = next(m for m in before.apps.get_models() if m._meta.db_table == table)
        old = model._meta.get_field(column)
        assert old.get_internal_type() == "CharField" and old.max_length < length, (
            f"{key}: {table}.{column} was {old.get_internal_type()}({old.max_length}), "
            f"not shorter than {length}"
        )


def test_raw_sql_and_python_operations_are_reviewed_and_reversible(linter):
    seen = set()
    for key, migration in project_migrations(linter):
        for operation in migration.operations:
            if isinstance(operation, RunSQL):
                seen.add(key)
                assert operation.reverse_sql is not None, f"{key}: RunSQL without reverse_sql"
            elif isinstance(operation, RunPython):
                seen.add(key)
                assert operation.reverse_code is not None, f"{key}: RunPython without reverse_code"
        if key in seen:
            assert key in REVIEWED_RAW_OPERATIONS, (
                f"{key} runs hand-written SQL or Python: review its locks and add it to "
                "REVIEWED_RAW_OPERATIONS with the reason it is safe"
            )
    assert set(REVIEWED_RAW_OPERATIONS) <= seen, "a reviewed migration no longer has raw operations"


@pytest.mark.parametrize(
    ("statements", "flagged"),
    [
        (['ALTER TABLE "wallets_wallet" ADD CONSTRAINT "c" CHECK ("balance" >= 0);'], True),
        (['ALTER TABLE "wallets_wallet" ADD CONSTRAINT "c" CHECK ("balance" >= 0) NOT VALID;'], False),
        (
            ['ALTER TABLE "t" ADD CONSTRAINT "fk" FOREIGN KEY ("w_id") REFERENCES "wallets_wallet" ("id");'],
            True,
        ),
        (
            [
                'CREATE TABLE "t" ("id" bigint);',
                'ALTER TABLE "t" ADD CONSTRAINT "fk" FOREIGN KEY ("w") REFERENCES "x" ("id");',
            ],
            False,
        ),
        (['ALTER TABLE "wallets_wallet" VALIDATE CONSTRAINT "c";'], False),
        (
            [
                'ALTER TABLE "t" ADD COLUMN "w_id" uuid NULL CONSTRAINT "fk" '
                'REFERENCES "wallets_wallet"("id") DEFERRABLE INITIALLY DEFERRED;'
            ],
            True,
        ),
        (['ALTER TABLE "t" ADD COLUMN "w_id" uuid NULL;'], False),
    ],
)
def test_project_check_flags_validated_constraints_on_existing_tables(statements, flagged):
    errors, _, _ = analyse_sql_statements(ProjectAnalyser, statements, [])

    assert ("ADD_CONSTRAINT_VALIDATED" in {e.code for e in errors}) is flagged


def test_linter_flags_what_the_recipe_forbids():
    """The linter still catches the classic outage-makers (guards against a silent upgrade)."""
    cases = {
        "NOT_NULL": ['ALTER TABLE "wallets_wallet" ADD COLUMN "x" integer NOT NULL;'],
        "DROP_COLUMN": ['ALTER TABLE "wallets_wallet" DROP COLUMN "name" CASCADE;'],
        "RENAME_COLUMN": ['ALTER TABLE "wallets_wallet" RENAME COLUMN "name" TO "label";'],
        "ADD_UNIQUE": ['ALTER TABLE "wallets_wallet" ADD CONSTRAINT "u" UNIQUE ("name");'],
    }
    for code, statements in cases.items():
        errors, _, _ = analyse_sql_statements(ProjectAnalyser, statements, [])
        assert code in {e.code for e in errors}, code
    _, _, warnings = analyse_sql_statements(
        ProjectAnalyser, ['CREATE INDEX "i" ON "wallets_wallet" ("name");'], []
    )
    assert "CREATE_INDEX" in {w.code for w in warnings}
    _, _, warnings = analyse_sql_statements(
        ProjectAnalyser, ['CREATE INDEX CONCURRENTLY "i" ON "wallets_wallet" ("name");'], []
    )
    assert not warnings


# --- reversibility --------------------------------------------------------------------


def test_every_migration_reverses_to_zero_and_forward_to_the_same_schema(scratch):
    migrate(scratch.url)
    forward = schema(scratch)
    assert {"wallets_wallet", "transfers_transfer", "audit_auditevent"} <= {t for t, *_ in forward["columns"]}
    assert forward["triggers"], "the ledger triggers are missing"

    # Dependants first: each step unapplies that app's migrations (and anything that
    # depends on them) one by one, running every reverse operation.
    for app in ("dashboard", "webhooks", "events", "audit", "corrections", "transfers", "wallets", "users"):
        migrate(scratch.url, app, "zero")
    empty = schema(scratch)

    assert not [row for row in empty["columns"] if PROJECT_TABLE.match(row[0])]
    assert not empty["triggers"]
    assert not empty["functions"], "reverse SQL left functions behind"
    assert all(not applied(scratch, app) for app in PROJECT_APPS)

    migrate(scratch.url)
    assert schema(scratch) == forward


# --- lock_timeout ---------------------------------------------------------------------


def test_migrate_gives_up_on_a_lock_instead_of_queueing_the_api_behind_it(scratch):
    migrate(scratch.url)
    with scratch.connect() as reader:
        # A long read of the audit trail (ACCESS SHARE) is in progress. Dropping the
        # append-only trigger needs ACCESS EXCLUSIVE; waiting for it would block every
        # other query on the table behind the migration.
        reader.execute("LOCK TABLE audit_auditevent IN ACCESS SHARE MODE")
        started = time.monotonic()
        result = manage(scratch.url, "migrate", "audit", "0001", "--noinput", DB_LOCK_TIMEOUT_MS="300")
        elapsed = time.monotonic() - started
        reader.rollback()

    assert result.returncode != 0
    assert "lock timeout" in result.stderr
    assert elapsed < 30  # process start-up plus 0.3 s, not an unbounded wait
    # The migration's transaction rolled back: still applied, trigger still there.
    assert "0002_append_only" in applied(scratch, "audit")
    assert any(t[1] == "audit_append_only" for t in schema(scratch)["triggers"])


def test_connections_from_settings_carry_the_lock_timeout(scratch):
    result = manage(
        scratch.url,
        "shell",
        "-c",
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW lock_timeout'); print(c.fetchone()[0])",
        DB_LOCK_TIMEOUT_MS="1234",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1234ms"


def run_migrate_script(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_in_project(["sh", "deploy/migrate.sh"], database_url, **env)


def wait_for_blocked_lock(db: Scratch, table: str, timeout: float = 60) -> None:
    """Return once some backend waits for a lock on `table` (pg_locks.granted is false)."""
    deadline = time.monotonic() + timeout
    with db.connect(autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [table]
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail(f"nothing ever waited for a lock on {table}")


def test_migrate_script_retries_after_a_lock_timeout(scratch):
    migrate(scratch.url)
    migrate(scratch.url, "audit", "0001")
    with scratch.connect() as writer:
        # An audit row insert in flight (ROW EXCLUSIVE): CREATE TRIGGER must wait for it.
        writer.execute("LOCK TABLE audit_auditevent IN ROW EXCLUSIVE MODE")
        process = subprocess.Popen(
            ["sh", "deploy/migrate.sh"],
            cwd=BASE_DIR,
            env=subprocess_env(scratch.url, MIGRATION_LOCK_TIMEOUT_MS="300", MIGRATION_ATTEMPTS="5"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_blocked_lock(scratch, "audit_auditevent")
            # The first try is blocked and gives up 0.3 s later; the next one starts 2 s
            # after that. Let the "insert" commit in between.
            time.sleep(1.0)
            writer.rollback()
            stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert process.returncode == 0, stdout + stderr
    assert "lock timeout" in stderr
    assert "(try 1 of 5, lock_timeout 300ms)" in stderr
    assert "(try 2 of 5" in stderr
    assert "0002_append_only" in applied(scratch, "audit")


def test_migrate_script_fails_when_the_lock_never_comes(scratch):
    migrate(scratch.url)
    migrate(scratch.url, "audit", "0001")
    with scratch.connect() as writer:
        writer.execute("LOCK TABLE audit_auditevent IN ROW EXCLUSIVE MODE")
        result = run_migrate_script(scratch.url, MIGRATION_LOCK_TIMEOUT_MS="200", MIGRATION_ATTEMPTS="2")
        writer.rollback()

    assert result.returncode != 0
    assert "(try 2 of 2" in result.stderr
    assert "migration failed" in result.stderr
    assert "0002_append_only" not in applied(scratch, "audit")


def test_migrate_script_migrates_as_the_owner_and_keeps_the_ledger_append_only(scratch):
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    owner, app = f"mig_owner_{suffix}", f"mig_app_{suffix}"
    try:
        result = run_migrate_script(
            database_url(scratch.name, app),
            DATABASE_ADMIN_URL=scratch.url,
            MIGRATE_DATABASE_URL=database_url(scratch.name, owner),
            DB_OWNER_ROLE=owner,
            DB_APP_ROLE=app,
        )
        assert result.returncode == 0, result.stdout + result.stderr

        with scratch.connect() as conn:
            owners = {
                r[0]
                for r in conn.execute(
                    "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename ~ %s",
                    [PROJECT_TABLE.pattern],
                )
            }
            grants = {
                r[0]
                for r in conn.execute(
                    "SELECT privilege_type FROM information_schema.role_table_grants "
                    "WHERE table_name = 'transfers_ledgerentry' AND grantee = %s",
                    [app],
                )
            }
        assert owners == {owner}
        assert grants == {"SELECT", "INSERT"}
    finally:
        with admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.name))
            )
            for role in (app, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
