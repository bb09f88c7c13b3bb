-- Holds, refunds and adjustments (transfers.0007).
--
-- 1. The ledger's checks learn the new kinds: a refund goes back the way its original
--    transfer came and, with its siblings, never returns more than the original moved;
--    an adjustment is between a user wallet and its currency's adjustment wallet. Wallets
--    other than user wallets (system, adjustment) keep no running balance.
-- 2. A hold changes only while pending, once, and only its status and what a capture
--    records; it is never deleted.
-- 3. A user wallet's `held` is the sum of its pending holds, and a captured hold's
--    transfer moved exactly what it captured, from the hold's wallet (deferred: checked
--    at commit).
-- Errors name the trigger (CONSTRAINT) and the wallet or transfer (DETAIL), as in 0005.

CREATE OR REPLACE FUNCTION ledger_check_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t transfers_transfer%ROWTYPE;
    original transfers_transfer%ROWTYPE;
    n integer; total numeric; src_ok integer; dst_ok integer; bad_types integer; refunded numeric;
    src_kind text; src_currency text; dst_kind text; dst_currency text;
BEGIN
    SELECT * INTO t FROM transfers_transfer WHERE id = NEW.id;
    SELECT count(*), coalesce(sum(e.amount), 0),
           count(*) FILTER (WHERE e.wallet_id = t.source_wallet_id AND e.amount = -t.amount),
           count(*) FILTER (WHERE e.wallet_id = t.destination_wallet_id AND e.amount = t.amount),
           count(*) FILTER (WHERE NOT (
                (t.kind = 'deposit' AND e.type = 'deposit')
             OR (t.kind = 'withdrawal' AND e.type = 'withdrawal')
             OR (t.kind = 'adjustment' AND e.type = 'adjustment')
             OR (t.kind = 'transfer' AND e.type = CASE WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END)
             OR (t.kind = 'refund' AND e.type = CASE WHEN e.amount < 0 THEN 'refund_out' ELSE 'refund_in' END)))
      INTO n, total, src_ok, dst_ok, bad_types
      FROM transfers_ledgerentry e WHERE e.transfer_id = t.id;
    IF n <> 2 OR total <> 0 OR src_ok <> 1 OR dst_ok <> 1 THEN
        RAISE EXCEPTION 'transfer % is unbalanced: % legs summing to %', t.id, n, total
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', t.id);
    END IF;
    IF bad_types <> 0 THEN
        RAISE EXCEPTION 'transfer % has legs whose type does not fit kind %', t.id, t.kind
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', t.id);
    END IF;
    SELECT kind, currency INTO src_kind, src_currency FROM wallets_wallet WHERE id = t.source_wallet_id;
    SELECT kind, currency INTO dst_kind, dst_currency FROM wallets_wallet WHERE id = t.destination_wallet_id;
    IF src_currency <> t.currency OR dst_currency <> t.currency THEN
        RAISE EXCEPTION 'transfer % crosses currencies', t.id
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', t.id);
    END IF;
    IF NOT ((t.kind = 'deposit' AND src_kind = 'system' AND dst_kind = 'user')
         OR (t.kind = 'withdrawal' AND src_kind = 'user' AND dst_kind = 'system')
         OR (t.kind IN ('transfer', 'refund') AND src_kind = 'user' AND dst_kind = 'user')
         OR (t.kind = 'adjustment' AND ((src_kind = 'adjustment' AND dst_kind = 'user')
                                     OR (src_kind = 'user' AND dst_kind = 'adjustment')))) THEN
        RAISE EXCEPTION 'transfer % of kind % cannot go from a % wallet to a % wallet',
            t.id, t.kind, src_kind, dst_kind
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', t.id);
    END IF;
    IF t.kind = 'refund' THEN
        -- Refunds of one transfer commit one at a time: a concurrent refund's check waits
        -- for this transaction's end on the same lock, then sees this refund in its sum.
        -- (An advisory lock, since the application role may not lock ledger rows; a hash
        -- collision only makes two unrelated refunds wait for each other.)
        PERFORM pg_advisory_xact_lock(hashtextextended('refund:' || t.refund_of_id::text, 0));
        SELECT * INTO original FROM transfers_transfer WHERE id = t.refund_of_id;
        IF original.kind IS DISTINCT FROM 'transfer'
           OR original.source_wallet_id <> t.destination_wallet_id
           OR original.destination_wallet_id <> t.source_wallet_id THEN
            RAISE EXCEPTION 'refund % does not return transfer % to its source', t.id, t.refund_of_id
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                DETAIL = format('transfer_id=%s', t.id);
        END IF;
        SELECT coalesce(sum(amount), 0) INTO refunded FROM transfers_transfer WHERE refund_of_id = original.id;
        IF refunded > original.amount THEN
            RAISE EXCEPTION 'refunds of transfer % add up to %, more than its %', original.id, refunded, original.amount
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                DETAIL = format('transfer_id=%s', t.id);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer; total numeric; w_kind text; w_balance bigint; prev bigint;
BEGIN
    SELECT count(*), coalesce(sum(amount), 0) INTO n, total
      FROM transfers_ledgerentry WHERE transfer_id = NEW.transfer_id;
    IF n <> 2 OR total <> 0 THEN
        RAISE EXCEPTION 'transfer % is unbalanced: % legs summing to %', NEW.transfer_id, n, total
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', NEW.transfer_id);
    END IF;
    SELECT kind, balance INTO w_kind, w_balance FROM wallets_wallet WHERE id = NEW.wallet_id;
    IF w_kind <> 'user' THEN
        IF NEW.balance_after IS NOT NULL THEN
            RAISE EXCEPTION '% wallet legs carry no balance_after (entry %)', w_kind, NEW.id
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                DETAIL = format('wallet_id=%s transfer_id=%s', NEW.wallet_id, NEW.transfer_id);
        END IF;
        RETURN NULL;
    END IF;
    SELECT balance_after INTO prev FROM transfers_ledgerentry
     WHERE wallet_id = NEW.wallet_id AND id < NEW.id ORDER BY id DESC LIMIT 1;
    IF NEW.balance_after IS DISTINCT FROM coalesce(prev, 0) + NEW.amount THEN
        RAISE EXCEPTION 'entry % breaks the running balance of wallet % (% + % <> %)',
            NEW.id, NEW.wallet_id, coalesce(prev, 0), NEW.amount, NEW.balance_after
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('wallet_id=%s transfer_id=%s', NEW.wallet_id, NEW.transfer_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM transfers_ledgerentry WHERE wallet_id = NEW.wallet_id AND id > NEW.id)
       AND w_balance <> NEW.balance_after THEN
        RAISE EXCEPTION 'wallet % balance % does not match its latest entry (%)',
            NEW.wallet_id, w_balance, NEW.balance_after
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('wallet_id=%s transfer_id=%s', NEW.wallet_id, NEW.transfer_id);
    END IF;
    RETURN NULL;
END $$;

-- A hold changes once, from pending, and only in what the change records.
CREATE FUNCTION hold_guard_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'holds are never deleted (hold %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'hold % is %: it changes no more', OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status = 'pending'
       OR (NEW.id, NEW.wallet_id, NEW.amount, NEW.currency, NEW.expires_at, NEW.created_by_id, NEW.created_at)
          IS DISTINCT FROM (OLD.id, OLD.wallet_id, OLD.amount, OLD.currency, OLD.expires_at, OLD.created_by_id, OLD.created_at)
       OR NEW.reference IS DISTINCT FROM OLD.reference
       OR NEW.description IS DISTINCT FROM OLD.description THEN
        RAISE EXCEPTION 'hold %: only its status and what capturing it records may change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER hold_change_guard BEFORE UPDATE OR DELETE ON transfers_hold
    FOR EACH ROW EXECUTE FUNCTION hold_guard_change();

-- At commit: the wallet's `held` is the sum of its pending holds; a captured hold's
-- transfer moved what it captured out of the hold's wallet; a hold is on a user wallet
-- of its currency.
CREATE FUNCTION hold_check_wallet_held() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wallet uuid; w_kind text; w_currency text; w_held bigint; pending numeric;
    capture transfers_transfer%ROWTYPE;
BEGIN
    IF TG_TABLE_NAME = 'transfers_hold' THEN
        wallet := NEW.wallet_id;
        SELECT kind, currency INTO w_kind, w_currency FROM wallets_wallet WHERE id = wallet;
        IF w_kind IS DISTINCT FROM 'user' OR w_currency IS DISTINCT FROM NEW.currency THEN
            RAISE EXCEPTION 'hold % must be on a user wallet of its currency %', NEW.id, NEW.currency
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                DETAIL = format('wallet_id=%s', wallet);
        END IF;
        IF NEW.status = 'captured' THEN
            SELECT * INTO capture FROM transfers_transfer WHERE id = NEW.capture_transfer_id;
            IF capture.source_wallet_id IS DISTINCT FROM wallet
               OR capture.amount IS DISTINCT FROM NEW.captured_amount
               OR capture.kind NOT IN ('transfer', 'withdrawal') THEN
                RAISE EXCEPTION 'hold % captured % but its transfer % does not move that out of its wallet',
                    NEW.id, NEW.captured_amount, NEW.capture_transfer_id
                    USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                    DETAIL = format('wallet_id=%s transfer_id=%s', wallet, NEW.capture_transfer_id);
            END IF;
        END IF;
    ELSE
        wallet := NEW.id;
    END IF;
    -- Deferred: read the rows as they are at commit.
    SELECT held INTO w_held FROM wallets_wallet WHERE id = wallet;
    SELECT coalesce(sum(amount), 0) INTO pending FROM transfers_hold WHERE wallet_id = wallet AND status = 'pending';
    IF w_held IS DISTINCT FROM pending THEN
        RAISE EXCEPTION 'wallet % holds % but its pending holds add up to %', wallet, w_held, pending
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('wallet_id=%s', wallet);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER hold_matches_wallet AFTER INSERT OR UPDATE ON transfers_hold
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_check_wallet_held();
CREATE CONSTRAINT TRIGGER wallet_held_matches_holds AFTER UPDATE OF held ON wallets_wallet
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_check_wallet_held();
