-- The tamper-evident ledger (transfers.0011). These guards make an honest mistake fail
-- loudly; they do not stop a superuser (session_replication_role = replica skips them).
-- What catches a rewrite is the chain itself and the checkpoints (manage.py verify_ledger).

-- Ledger entries stay append-only, except that an entry without a hash may get one, once,
-- with nothing else changing (the backfill of entries from before the chain).
CREATE FUNCTION ledger_entry_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.entry_hash IS NULL AND NEW.entry_hash IS NOT NULL
       AND (NEW.id, NEW.transfer_id, NEW.wallet_id, NEW.type, NEW.amount, NEW.created_at)
           = (OLD.id, OLD.transfer_id, OLD.wallet_id, OLD.type, OLD.amount, OLD.created_at)
       AND NEW.balance_after IS NOT DISTINCT FROM OLD.balance_after THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

DROP TRIGGER entry_append_only ON transfers_ledgerentry;
CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON transfers_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_reject_change();

-- A wallet's chain head only moves forward: its entry count never drops (nor goes back to
-- "not linked"), and the head hash changes only with it. The WHEN clause is evaluated
-- without calling the function, so the money path's update pays next to nothing.
CREATE FUNCTION wallet_reject_head_rewind() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet % chain head cannot go back (% entries, now %)', OLD.id, OLD.entry_count, NEW.entry_count
        USING ERRCODE = 'restrict_violation', DETAIL = format('wallet_id=%s', OLD.id);
END $$;

CREATE TRIGGER wallet_head_forward_only BEFORE UPDATE OF head_hash, entry_count ON wallets_wallet
    FOR EACH ROW
    WHEN (OLD.entry_count IS NOT NULL AND (NEW.entry_count IS NULL OR NEW.entry_count < OLD.entry_count
          OR (NEW.entry_count = OLD.entry_count AND NEW.head_hash IS DISTINCT FROM OLD.head_hash)))
    EXECUTE FUNCTION wallet_reject_head_rewind();

-- Checkpoints are records of the past: never changed, never deleted.
CREATE TRIGGER checkpoint_append_only BEFORE UPDATE OR DELETE ON transfers_ledgercheckpoint
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
CREATE TRIGGER checkpoint_wallet_append_only BEFORE UPDATE OR DELETE ON transfers_ledgercheckpointwallet
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
