-- The history of each wallet's held amount (transfers.0013, transfers.models.HeldChange).
--
-- Every change of `held` (a hold created, captured, voided or expired) is an UPDATE of the
-- wallet's row (transfers.statements), so a row trigger on wallets_wallet records each one,
-- under the wallet's row lock, in the statement that makes it. Its time is the wallet's new
-- updated_at: the application's clock for the change, the instant the hold's created_at or
-- finished_at and the capture's ledger entries record, so a balance and a held amount read
-- at one instant agree. Whatever changes held sets updated_at to the change's time (a
-- hand-written fix too: ops/runbooks/resync_wallet_held.sql); two changes may share one.
-- The trigger runs with the privileges of the role that changes the wallet: the
-- application role needs SELECT and INSERT on the history, nothing more (setup_db_roles).

CREATE FUNCTION wallet_record_held() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transfers_heldchange (wallet_id, changed_at, held_after)
    VALUES (NEW.id, NEW.updated_at, NEW.held);
    RETURN NULL;
END;
$$;

-- CREATE TRIGGER takes SHARE ROW EXCLUSIVE on wallets_wallet until the migration commits:
-- no `held` changes between the backfill below and the trigger taking over.
CREATE TRIGGER wallet_held_history AFTER UPDATE OF held ON wallets_wallet
    FOR EACH ROW WHEN (OLD.held IS DISTINCT FROM NEW.held) EXECUTE FUNCTION wallet_record_held();
CREATE TRIGGER heldchange_append_only BEFORE UPDATE OR DELETE ON transfers_heldchange
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();

-- The history so far, from the holds: each adds its amount at created_at and takes it
-- back at finished_at. One row per wallet and instant (the net change then), in time
-- order, carrying the running sum: the wallet's last row is its `held` today.
INSERT INTO transfers_heldchange (wallet_id, changed_at, held_after)
SELECT wallet_id, changed_at, sum(delta) OVER (PARTITION BY wallet_id ORDER BY changed_at)
  FROM (SELECT wallet_id, changed_at, sum(delta) AS delta
          FROM (SELECT wallet_id, created_at AS changed_at, amount AS delta FROM transfers_hold
                UNION ALL
                SELECT wallet_id, finished_at, -amount FROM transfers_hold WHERE finished_at IS NOT NULL) e
         GROUP BY wallet_id, changed_at) net
 WHERE delta <> 0
 ORDER BY wallet_id, changed_at;
