-- Events are append-only, like the audit trail (ledger_reject_change is audit.0002's).
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events_event
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
