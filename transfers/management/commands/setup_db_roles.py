"""Create the least-privilege PostgreSQL roles: an owner for migrations, an app role for requests.

The owner role owns the schema's tables, sequences and functions; `migrate` runs as
it. The application role may read and write ordinary tables but may only SELECT and
INSERT the ledger (transfers, ledger entries, ledger checkpoints, the history of held
amounts, which the wallets' trigger writes with the privileges of the role changing
`held`), the audit trail, the outbox's events and webhook delivery attempts: no UPDATE,
DELETE or TRUNCATE; webhook deliveries change but are never deleted. The append-only triggers
(transfers/0003, 0011, 0013) already refuse UPDATE and DELETE for everyone; these grants
are a second, independent layer, and the only one that stops TRUNCATE (row triggers
never fire for it).

Every statement is idempotent and convergent (re-running repairs drift), and all of
them run in one transaction. Run it as a superuser (or a role that can create roles
and owns the objects) after every `migrate`: tables a migration adds get the app's
ordinary grants through default privileges, and the re-run narrows new append-only
tables. `--print-sql` prints the exact SQL instead of running it; docs/security.md
holds the reviewed copy. Passwords come only from environment variables and are sent
as SCRAM verifiers computed by libpq, so the plain text never reaches the server.
"""

from __future__ import annotations

import argparse
import os
import re

import psycopg
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

# Tables the application may only read and append to.
APPEND_ONLY_TABLES = (
    "transfers_transfer",
    "transfers_ledgerentry",
    "transfers_ledgercheckpoint",
    "transfers_ledgercheckpointwallet",
    "transfers_heldchange",
    "audit_auditevent",
    "events_event",
    "webhooks_attempt",
)
# Tables the application changes but never deletes from (deliveries: their attempts and
# the events they name must stay explainable).
NO_DELETE_TABLES = ("webhooks_delivery",)
# Tables the application only reads (it never migrates).
READ_ONLY_TABLES = ("django_migrations",)

# Role and schema names are also placed inside dollar-quoted DO blocks, so they are
# held to plain lower-case identifiers on top of being quoted by sql.Identifier/Literal.
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ENV_VAR_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a plain PostgreSQL name (lower-case letters, digits, _; at most 63)."
        )
    return value


def _env_var(value: str) -> str:
    if not ENV_VAR_PATTERN.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an environment variable name.")
    return value


def _do(body: sql.Composable) -> sql.Composed:
    return sql.SQL("DO $roles$\n{}\n$roles$").format(body)


def role_statements(
    *, owner: str, app: str, database: str, schema: str = "public", reassign: bool = False
) -> list[sql.Composed]:
    """The whole setup as a list of idempotent statements, in order. Reads no database state."""
    o, a, s = sql.Identifier(owner), sql.Identifier(app), sql.Identifier(schema)
    statements: list[sql.Composed] = []

    # 1. Roles. A superuser, BYPASSRLS role or member of the owner would ignore every
    # grant below, so such an existing role is refused rather than silently "secured".
    for role in (owner, app):
        statements.append(
            _do(
                sql.SQL(
                    "BEGIN\n"
                    "    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit}) THEN\n"
                    "        CREATE ROLE {ident} LOGIN;\n"
                    "    ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = {lit}"
                    " AND (rolsuper OR rolbypassrls)) THEN\n"
                    "        RAISE EXCEPTION 'role % is a superuser or bypasses RLS; privileges would not"
                    " apply', {lit};\n"
                    "    END IF;\n"
                    "END;"
                ).format(lit=sql.Literal(role), ident=sql.Identifier(role))
            )
        )
        statements.append(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    statements.append(
        _do(
            sql.SQL(
                "BEGIN\n"
                "    IF pg_has_role({app}, {owner}, 'MEMBER') THEN\n"
                "        RAISE EXCEPTION 'role % is a member of % and would inherit ownership',\n"
                "            {app}, {owner};\n"
                "    END IF;\n"
                "END;"
            ).format(app=sql.Literal(app), owner=sql.Literal(owner))
        )
    )

    # 2. Database and schema. PUBLIC loses CREATE on the schema (the PostgreSQL 15
    # default; older clusters grant it), so only the owner can create objects.
    statements += [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(sql.Identifier(database), o, a),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(s),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(s, o),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, a),
    ]

    # 3. Ownership (--reassign): the schema, every table, view and free-standing
    # sequence (identity/serial sequences follow their table), and every function
    # (the ledger triggers), so later migrations can alter and replace them.
    if reassign:
        statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(s, o))
        statements.append(
            _do(
                sql.SQL(
                    "DECLARE r record;\n"
                    "BEGIN\n"
                    "    FOR r IN\n"
                    "        SELECT c.relname, c.relkind FROM pg_class c\n"
                    "          JOIN pg_namespace n ON n.oid = c.relnamespace\n"
                    "         WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')\n"
                    "           AND NOT EXISTS (SELECT FROM pg_depend d\n"
                    "                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid\n"
                    "                              AND d.deptype IN ('a', 'i', 'e'))\n"
                    "    LOOP\n"
                    "        EXECUTE format('ALTER %s %I.%I OWNER TO %I',\n"
                    "            CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'\n"
                    "                WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'"
                    " ELSE 'TABLE' END,\n"
                    "            {schema}, r.relname, {owner});\n"
                    "    END LOOP;\n"
                    "    FOR r IN\n"
                    "        SELECT p.oid::regprocedure AS routine FROM pg_proc p\n"
                    "          JOIN pg_namespace n ON n.oid = p.pronamespace\n"
                    "         WHERE n.nspname = {schema}\n"
                    "           AND NOT EXISTS (SELECT FROM pg_depend d\n"
                    "                            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid\n"
                    "                              AND d.deptype = 'e')\n"
                    "    LOOP\n"
                    "        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.routine, {owner});\n"
                    "    END LOOP;\n"
                    "END;"
                ).format(schema=sql.Literal(schema), owner=sql.Literal(owner))
            )
        )

    # 4. The app's grants, rebuilt from nothing so a re-run removes anything extra.
    statements += [
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, a),
        sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(s, a),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(s, a),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, a),
    ]
    narrowed = [(table, "UPDATE, DELETE, TRUNCATE") for table in APPEND_ONLY_TABLES]
    narrowed += [(table, "DELETE, TRUNCATE") for table in NO_DELETE_TABLES]
    narrowed += [(table, "INSERT, UPDATE, DELETE, TRUNCATE") for table in READ_ONLY_TABLES]
    for table, privileges in narrowed:
        # A table that does not exist yet (e.g. before the audit app is migrated) is
        # skipped; the re-run after the migration that creates it narrows it.
        statements.append(
            _do(
                sql.SQL(
                    "BEGIN\n"
                    "    IF to_regclass({qualified}) IS NOT NULL THEN\n"
                    "        REVOKE {privileges} ON TABLE {table} FROM PUBLIC, {app};\n"
                    "    END IF;\n"
                    "END;"
                ).format(
                    qualified=sql.Literal(f'"{schema}"."{table}"'),
                    privileges=sql.SQL(privileges),
                    table=sql.Identifier(schema, table),
                    app=a,
                )
            )
        )

    # 5. Whatever the owner creates later (i.e. what migrations add) gets the app's
    # ordinary grants without a re-run.
    statements += [
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {}"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(o, s, a),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(o, s, a),
    ]
    return statements


class Command(BaseCommand):
    help = (
        "Create or repair the owner (migrations) and application (requests) PostgreSQL roles. "
        "Idempotent; re-run after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--owner", required=True, type=_name, help="Role that owns the schema (migrations)."
        )
        parser.add_argument("--app", required=True, type=_name, help="Role the application connects as.")
        parser.add_argument(
            "--owner-password-env",
            type=_env_var,
            metavar="VAR",
            help="Set the owner's password from this environment variable.",
        )
        parser.add_argument(
            "--app-password-env",
            type=_env_var,
            metavar="VAR",
            help="Set the application role's password from this environment variable.",
        )
        parser.add_argument(
            "--database",
            metavar="NAME",
            help="Database name (not alias) to set up; default: the default connection's database.",
        )
        parser.add_argument("--schema", default="public", type=_name, help="Schema holding the tables.")
        parser.add_argument(
            "--reassign",
            action="store_true",
            help="Also make the owner role own the schema and its existing tables, sequences and functions.",
        )
        parser.add_argument("--print-sql", action="store_true", help="Print the SQL instead of running it.")

    def handle(self, *args, **options) -> None:
        owner, app = options["owner"], options["app"]
        if owner == app:
            raise CommandError("--owner and --app must be different roles.")
        base = connections[DEFAULT_DB_ALIAS]
        database = options["database"] or base.settings_dict["NAME"]
        statements = role_statements(
            owner=owner, app=app, database=database, schema=options["schema"], reassign=options["reassign"]
        )
        passwords = [
            (role, var)
            for role, var in ((owner, options["owner_password_env"]), (app, options["app_password_env"]))
            if var
        ]
        if options["print_sql"]:
            self._print(statements, passwords)
            return
        secrets = []
        for role, var in passwords:
            value = os.environ.get(var)
            if not value:
                raise CommandError(f"Environment variable {var} (password for {role}) is unset or empty.")
            secrets.append((role, value))

        # A connection of its own: --database may name another database than Django's.
        wrapper = base.__class__({**base.settings_dict, "NAME": database}, alias="setup_db_roles")
        try:
            conn = wrapper.get_new_connection(wrapper.get_connection_params())
        except psycopg.Error as exc:
            raise CommandError(f"Cannot connect to database {database!r}: {exc}") from None
        try:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
                for role, value in secrets:
                    verifier = conn.pgconn.encrypt_password(value.encode(), role.encode(), b"scram-sha-256")
                    conn.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(role), sql.Literal(verifier.decode())
                        )
                    )
        except psycopg.Error as exc:
            raise CommandError(f"Role setup failed and was rolled back: {exc}") from None
        finally:
            conn.close()
        self.stdout.write(
            f"Roles ready on database {database!r}: owner {owner!r}, application {app!r}"
            f"{' (ownership reassigned)' if options['reassign'] else ''}."
            f" Re-run after every migrate."
        )

    def _print(self, statements: list[sql.Composed], passwords: list[tuple[str, str]]) -> None:
        self.stdout.write(
            "-- Generated by `manage.py setup_db_roles`; run as a superuser: psql -v ON_ERROR_STOP=1 -f FILE"
        )
        self.stdout.write("BEGIN;")
        for statement in statements:
            self.stdout.write(statement.as_string(None) + ";")
        for role, var in passwords:
            self.stdout.write(
                f"-- ALTER ROLE {sql.Identifier(role).as_string(None)} PASSWORD '<SCRAM verifier of ${var}>';"
                " (not printed; set it with psql's \\password)"
            )
        self.stdout.write("COMMIT;")
