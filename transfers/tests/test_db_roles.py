"""Least-privilege database roles (manage.py setup_db_roles), proved by connecting as them.

Tests create an owner and an application role named after this pytest process, run
the command against this process's test database (the `roles` fixture with
--reassign), then open separate psycopg connections as those roles. Roles are
cluster-wide, so a finalizer registered before the command runs hands ownership back
and drops them whatever happens.

The append-only triggers (transfers/0003, audit/0002) refuse UPDATE and DELETE for
everyone with restrict_violation (23001). The refusals here must be the grants'
own insufficient_privilege (42501), checked by SQLSTATE, so each layer is proved
independently of the other.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from audit.models import AuditEvent
from transfers.holds import hold_create
from transfers.ledger_chain import ledger_checkpoint_create
from transfers.models import HeldChange, Hold, LedgerEntry, Transfer
from wallets.models import Wallet
from webhooks.dispatch import fan_out_settled
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)

APPEND_ONLY = (
    "transfers_transfer",
    "transfers_ledgerentry",
    "transfers_ledgercheckpoint",
    "transfers_ledgercheckpointwallet",
    "transfers_heldchange",
    "audit_auditevent",
    "events_event",
    "webhooks_attempt",
)
PRIMARY_KEY = {"events_event": "sequence"}  # the others' is `id`
INSUFFICIENT_PRIVILEGE = "42501"
_counter = itertools.count(1)


@dataclass
class Roles:
    owner: str
    app: str
    password: str
    database: str

    def connect(self, role: str) -> psycopg.Connection:
        """A connection of its own as `role` (password auth or trust: either works)."""
        s = connection.settings_dict
        return psycopg.connect(
            host=s["HOST"] or "127.0.0.1",
            port=s["PORT"] or 5432,
            dbname=self.database,
            user=role,
            password=self.password,
            autocommit=True,
        )


def _role_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        return cursor.fetchone() is not None


def _drop_roles(names: list[str]) -> None:
    existing = [name for name in names if _role_exists(name)]
    if not existing:
        return
    # One transaction: if handing ownership back failed, DROP OWNED must not run
    # (it would drop the test database's tables). One role at a time: DROP OWNED BY
    # owner, app trips over the owner's default ACL that names the app role.
    with transaction.atomic(), connection.cursor() as cursor:
        for name in reversed(existing):  # the app role before its owner
            role = sql.Identifier(name)
            cursor.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role).as_string(None))
            cursor.execute(sql.SQL("DROP OWNED BY {}").format(role).as_string(None))
        for name in existing:
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)).as_string(None))


def _names(kind: str) -> str:
    return f"wallet_{kind}_t{os.getpid()}_{next(_counter)}"


@pytest.fixture
def role_names(request) -> Callable[[], tuple[str, str]]:
    """Fresh (owner, app) names, dropped after the test even if it fails half-way."""
    made: list[str] = []
    request.addfinalizer(lambda: _drop_roles(made))

    def make() -> tuple[str, str]:
        owner, app = _names("owner"), _names("app")
        made.extend([owner, app])
        return owner, app

    return make


@pytest.fixture
def run_setup() -> Callable[..., str]:
    def run(owner: str, app: str, *extra: str) -> str:
        out = StringIO()
        call_command(
            "setup_db_roles",
            "--owner",
            owner,
            "--app",
            app,
            "--database",
            connection.settings_dict["NAME"],
            *extra,
            stdout=out,
        )
        return out.getvalue()

    return run


@pytest.fixture
def roles(role_names, run_setup, monkeypatch) -> Roles:
    owner, app = role_names()
    password = "role-pass-" + uuid.uuid4().hex
    monkeypatch.setenv("TEST_DB_ROLE_PASSWORD", password)
    run_setup(
        owner,
        app,
        "--reassign",
        "--owner-password-env",
        "TEST_DB_ROLE_PASSWORD",
        "--app-password-env",
        "TEST_DB_ROLE_PASSWORD",
    )
    return Roles(owner=owner, app=app, password=password, database=connection.settings_dict["NAME"])


@pytest.fixture
def ledger(make_user, make_wallet) -> Wallet:
    """A user wallet with one committed deposit and a pending hold of 100: a transfer, two
    entries, a ledger checkpoint, a change of held and an audit event at least."""
    user = make_user()
    endpoint, _ = endpoint_create(owner_id=user.id, url="https://93.184.215.14/hooks", event_types=["*"])
    wallet = make_wallet(user, balance=1_000)
    hold_create(wallet_id=wallet.id, owner_id=user.id, amount=100)
    ledger_checkpoint_create()
    fan_out_settled()  # the deposit's and the hold's events become deliveries to the endpoint
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now(), duration_ms=1, error="timeout"
    )
    if not AuditEvent.objects.exists():
        AuditEvent.objects.create(action=AuditEvent.Action.LOGIN_FAILED, actor_label="probe")
    return wallet


def _has_table(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)).as_string(None))
        return cursor.fetchone()[0]


def _privileges(role: str, table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) AS p"
            " WHERE has_table_privilege(%s, %s, p)",
            [role, table],
        )
        return {row[0] for row in cursor.fetchall()}


def _assert_refused(conn: psycopg.Connection, statement: sql.Composable) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo:
        conn.execute(statement)
    assert excinfo.value.sqlstate == INSUFFICIENT_PRIVILEGE, excinfo.value


# --- the roles work -----------------------------------------------------------------------


def test_app_role_reads_and_appends_to_the_ledger(roles, ledger):
    system = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency=ledger.currency)
    transfer_id = uuid.uuid4()

    # A complete deposit written by hand as the app role: the deferred ledger triggers
    # check it at commit, so it must be a correct one.
    with roles.connect(roles.app) as conn:
        assert conn.execute("SELECT count(*) FROM transfers_transfer").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM transfers_ledgerentry").fetchone()[0] == 2
        with conn.transaction():
            conn.execute(
                "INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount,"
                " currency, status, reference_wallet_id, description, created_at)"
                " VALUES (%s, 'deposit', %s, %s, 500, %s, 'completed', %s, '', now())",
                [transfer_id, system.id, ledger.id, ledger.currency, ledger.id],
            )
            conn.execute(
                "INSERT INTO transfers_ledgerentry"
                " (transfer_id, wallet_id, type, amount, balance_after, created_at)"
                " VALUES (%s, %s, 'deposit', -500, NULL, now()), (%s, %s, 'deposit', 500, 1500, now())",
                [transfer_id, system.id, transfer_id, ledger.id],
            )
            conn.execute("UPDATE wallets_wallet SET balance = 1500 WHERE id = %s", [ledger.id])

    ledger.refresh_from_db()
    assert ledger.balance == 1_500
    assert Transfer.objects.filter(id=transfer_id).exists()
    assert LedgerEntry.objects.filter(transfer_id=transfer_id).count() == 2


def test_app_role_changing_held_appends_to_its_history(roles, ledger):
    """The history's trigger runs as the role that changes `held`: INSERT is all it needs."""
    hold_id = uuid.uuid4()
    with roles.connect(roles.app) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO transfers_hold (id, wallet_id, amount, captured_amount, currency, status,"
            " expires_at, description, created_by_id, created_at)"
            " VALUES (%s, %s, 50, 0, %s, 'pending', now() + interval '1 hour', '', %s, now())",
            [hold_id, ledger.id, ledger.currency, ledger.owner_id],
        )
        conn.execute(
            "UPDATE wallets_wallet SET held = held + 50, updated_at = '2026-11-02T09:00:00Z' WHERE id = %s",
            [ledger.id],
        )

    assert Hold.objects.filter(id=hold_id).exists()
    last = HeldChange.objects.filter(wallet_id=ledger.id).order_by("-id").first()
    assert (last.held_after, last.changed_at.isoformat()) == (150, "2026-11-02T09:00:00+00:00")


def test_app_role_can_still_change_ordinary_tables(roles, ledger):
    with roles.connect(roles.app) as conn:
        updated = conn.execute("UPDATE wallets_wallet SET name = 'renamed' WHERE id = %s", [ledger.id])
        assert updated.rowcount == 1

    ledger.refresh_from_db()
    assert ledger.name == "renamed"


def test_app_role_can_insert_audit_events(roles, ledger):
    assert {"SELECT", "INSERT"} <= _privileges(roles.app, "audit_auditevent")
    with roles.connect(roles.app) as conn, conn.transaction(force_rollback=True):
        # Copy an existing event: whatever the columns are, the INSERT privilege is what is tested.
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'audit_auditevent' AND column_name <> 'id' ORDER BY ordinal_position"
            )
        ]
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO audit_auditevent ({cols}) SELECT {cols} FROM audit_auditevent LIMIT 1"
            ).format(cols=cols)
        )
        assert inserted.rowcount == 1


# --- the app role is refused ----------------------------------------------------------------


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {table} SET {pk} = {pk}", "DELETE FROM {table}", "TRUNCATE {table}"],
    ids=["update", "delete", "truncate"],
)
def test_app_role_cannot_change_or_erase_append_only_tables(roles, ledger, table, statement):
    before = _count(table)
    assert before > 0  # a refused UPDATE/DELETE of zero rows would prove nothing

    with roles.connect(roles.app) as conn:
        pk = sql.Identifier(PRIMARY_KEY.get(table, "id"))
        _assert_refused(conn, sql.SQL(statement).format(table=sql.Identifier(table), pk=pk))

    assert _count(table) == before
    assert not {"UPDATE", "DELETE", "TRUNCATE"} & _privileges(roles.app, table)


def test_app_role_changes_webhook_deliveries_but_never_deletes_them(roles, ledger):
    before = _count("webhooks_delivery")
    assert before > 0
    with roles.connect(roles.app) as conn:
        conn.execute("UPDATE webhooks_delivery SET next_attempt_at = now()")
        _assert_refused(conn, sql.SQL("DELETE FROM webhooks_delivery"))
        _assert_refused(conn, sql.SQL("TRUNCATE webhooks_delivery CASCADE"))
    assert _count("webhooks_delivery") == before
    assert _privileges(roles.app, "webhooks_delivery") == {"SELECT", "INSERT", "UPDATE"}


def test_triggers_alone_do_not_stop_truncate(ledger):
    """Why the grants matter: a role with table privileges empties the ledger past the triggers."""
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        dbname=s["NAME"],
        user=s["USER"],
        password=s["PASSWORD"] or None,
    ) as conn:
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("DELETE FROM transfers_ledgerentry")
        conn.rollback()
        conn.execute("TRUNCATE transfers_ledgerentry")
        assert conn.execute("SELECT count(*) FROM transfers_ledgerentry").fetchone()[0] == 0
        conn.rollback()
    assert _count("transfers_ledgerentry") == 2


def test_app_role_cannot_change_the_schema_or_the_migration_history(roles, ledger):
    with roles.connect(roles.app) as conn:
        _assert_refused(conn, sql.SQL("CREATE TABLE app_made (id int)"))
        _assert_refused(conn, sql.SQL("ALTER TABLE wallets_wallet ADD COLUMN sneaky int"))
        _assert_refused(conn, sql.SQL("DROP TABLE transfers_idempotencyrecord"))
        _assert_refused(conn, sql.SQL("DELETE FROM django_migrations"))
        assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0


def test_owner_role_owns_everything_and_can_migrate(roles, ledger):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> %s", [roles.owner]
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'ledger_reject_change' AND proowner = %s::regrole",
            [roles.owner],
        )
        assert cursor.fetchone()[0] == 1

    with roles.connect(roles.owner) as conn, conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE transfers_transfer ADD COLUMN probe int")
        conn.execute(
            "CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
        )


# --- later migrations, re-runs and drift ------------------------------------------------------


def test_tables_the_owner_creates_later_get_the_app_grants(roles):
    table = f"probe_{os.getpid()}_{next(_counter)}"
    with roles.connect(roles.owner) as owner:
        owner.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)"
            ).format(sql.Identifier(table))
        )
        try:
            with roles.connect(roles.app) as app:
                t = sql.Identifier(table)
                app.execute(sql.SQL("INSERT INTO {} (note) VALUES ('a')").format(t))
                assert app.execute(sql.SQL("UPDATE {} SET note = 'b'").format(t)).rowcount == 1
                assert app.execute(sql.SQL("DELETE FROM {}").format(t)).rowcount == 1
        finally:
            owner.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def test_rerun_narrows_an_append_only_table_a_migration_added_and_repairs_drift(roles, run_setup):
    # Simulate the audit migration landing after the roles were set up: the owner
    # recreates the table, and default privileges hand the app full DML on it.
    real = _has_table("audit_auditevent")
    with roles.connect(roles.owner) as owner:
        if real:
            owner.execute("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_real")
        try:
            owner.execute("CREATE TABLE audit_auditevent (id bigint PRIMARY KEY, created_at timestamptz)")
            assert {"UPDATE", "DELETE"} <= _privileges(roles.app, "audit_auditevent")
            owner.execute(
                sql.SQL("GRANT TRUNCATE ON transfers_ledgerentry TO {}").format(sql.Identifier(roles.app))
            )

            run_setup(roles.owner, roles.app)

            assert _privileges(roles.app, "audit_auditevent") == {"SELECT", "INSERT"}
            assert _privileges(roles.app, "transfers_ledgerentry") == {"SELECT", "INSERT"}
        finally:
            owner.execute("DROP TABLE IF EXISTS audit_auditevent")
            if real:
                owner.execute("ALTER TABLE audit_auditevent_real RENAME TO audit_auditevent")


def test_missing_audit_table_is_skipped_not_an_error(role_names, run_setup):
    owner, app = role_names()
    real = _has_table("audit_auditevent")
    if real:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_away")
    try:
        run_setup(owner, app)
        assert not _has_table("audit_auditevent")
        assert _privileges(app, "transfers_ledgerentry") == {"SELECT", "INSERT"}
        assert {"UPDATE", "DELETE"} <= _privileges(app, "wallets_wallet")
    finally:
        if real:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE audit_auditevent_away RENAME TO audit_auditevent")


# --- the command itself -------------------------------------------------------------------


def test_print_sql_prints_the_reviewed_sql_and_runs_nothing(role_names, monkeypatch):
    owner, app = role_names()
    monkeypatch.setenv("APP_PW", "do-not-print-me-123")
    out = StringIO()

    call_command(
        "setup_db_roles",
        "--owner",
        owner,
        "--app",
        app,
        "--app-password-env",
        "APP_PW",
        "--print-sql",
        stdout=out,
    )

    text = out.getvalue()
    assert f'CREATE ROLE "{app}" LOGIN' in text
    for table in APPEND_ONLY:
        assert f'REVOKE UPDATE, DELETE, TRUNCATE ON TABLE "public"."{table}" FROM PUBLIC, "{app}"' in text
    assert f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "public"' in text
    assert "OWNER TO" not in text  # only with --reassign
    assert "do-not-print-me-123" not in text
    assert not _role_exists(owner)
    assert not _role_exists(app)


def test_passwords_come_from_the_environment_as_scram_verifiers(role_names, run_setup, monkeypatch):
    owner, app = role_names()
    monkeypatch.setenv("APP_PW", "plain-text-secret-456")

    output = run_setup(owner, app, "--app-password-env", "APP_PW")

    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [app])
        stored = cursor.fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")
    assert "plain-text-secret-456" not in stored
    assert "plain-text-secret-456" not in output


def test_an_unset_password_variable_is_an_error_and_creates_nothing(role_names, run_setup, monkeypatch):
    owner, app = role_names()
    monkeypatch.delenv("NO_SUCH_PW", raising=False)

    with pytest.raises(CommandError, match="NO_SUCH_PW"):
        run_setup(owner, app, "--app-password-env", "NO_SUCH_PW")

    assert not _role_exists(owner)


@pytest.mark.parametrize(
    "bad", ['wallet"app', "wallet app", "Wallet", "a;drop role postgres", "x" * 64, "1app"]
)
def test_role_names_must_be_plain_identifiers(bad):
    with pytest.raises(CommandError, match="plain PostgreSQL name"):
        call_command(
            "setup_db_roles", "--owner", "wallet_owner_x", "--app", bad, "--print-sql", stdout=StringIO()
        )


def test_a_superuser_is_refused_as_the_app_role_and_nothing_is_kept(role_names, run_setup):
    owner, _ = role_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        superuser = cursor.fetchone()[0]

    with pytest.raises(CommandError, match="superuser"):
        run_setup(owner, superuser)

    assert not _role_exists(owner)  # the whole setup is one transaction


def test_running_twice_is_harmless(roles, run_setup, ledger):
    run_setup(roles.owner, roles.app, "--reassign")

    assert _privileges(roles.app, "transfers_transfer") == {"SELECT", "INSERT"}
    assert _privileges(roles.app, "wallets_wallet") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
