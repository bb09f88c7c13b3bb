"""The audit trail is append-only: PostgreSQL rejects UPDATE and DELETE on it."""

from django.db import migrations

from foundation.migration_ops import VendorSQL

PG_FORWARD = """
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
"""
PG_REVERSE = "DROP TRIGGER IF EXISTS audit_append_only ON audit_auditevent;"

SQLITE_FORWARD = [
    f"CREATE TRIGGER audit_auditevent_no_{op.lower()} BEFORE {op} ON audit_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only'); END;"
    for op in ("UPDATE", "DELETE")
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS audit_auditevent_no_{op.lower()};" for op in ("UPDATE", "DELETE")]


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        # ledger_reject_change() is defined there.
        ("transfers", "0003_ledger_invariants"),
    ]

    operations = [
        VendorSQL("postgresql", PG_FORWARD, PG_REVERSE),
        VendorSQL("sqlite", SQLITE_FORWARD, SQLITE_REVERSE),
    ]
