-- Reverse of 0011: drop the guards and give ledger entries back the plain append-only trigger.
DROP TRIGGER IF EXISTS checkpoint_wallet_append_only ON transfers_ledgercheckpointwallet;
DROP TRIGGER IF EXISTS checkpoint_append_only ON transfers_ledgercheckpoint;
DROP TRIGGER IF EXISTS wallet_head_forward_only ON wallets_wallet;
DROP FUNCTION IF EXISTS wallet_reject_head_rewind();
DROP TRIGGER IF EXISTS entry_append_only ON transfers_ledgerentry;
CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON transfers_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
DROP FUNCTION IF EXISTS ledger_entry_reject_change();
