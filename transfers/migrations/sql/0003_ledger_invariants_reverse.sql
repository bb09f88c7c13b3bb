DROP TRIGGER IF EXISTS wallet_balance_matches_ledger ON wallets_wallet;
DROP FUNCTION IF EXISTS wallet_check_balance();
DROP TRIGGER IF EXISTS entry_balanced ON transfers_ledgerentry;
DROP FUNCTION IF EXISTS ledger_check_entry();
DROP TRIGGER IF EXISTS transfer_balanced ON transfers_transfer;
DROP FUNCTION IF EXISTS ledger_check_transfer();
DROP TRIGGER IF EXISTS entry_append_only ON transfers_ledgerentry;
DROP TRIGGER IF EXISTS transfer_append_only ON transfers_transfer;
