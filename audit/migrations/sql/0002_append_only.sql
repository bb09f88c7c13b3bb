-- Append-only tables: a BEFORE UPDATE OR DELETE trigger with this function refuses the change.
-- Shared: the audit trail here, and transfers and ledger entries (transfers.0003 depends on
-- this migration). The function keeps its first name, ledger_reject_change, which databases
-- migrated before it moved here already have.
CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
