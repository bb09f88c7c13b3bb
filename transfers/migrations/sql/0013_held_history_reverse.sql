-- Reverse of 0013's SQL: the triggers and the function (the table goes with the model).
DROP TRIGGER IF EXISTS heldchange_append_only ON transfers_heldchange;
DROP TRIGGER IF EXISTS wallet_held_history ON wallets_wallet;
DROP FUNCTION IF EXISTS wallet_record_held();
