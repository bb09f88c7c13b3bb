-- Reverse of 0007: drop the hold triggers, and restore the check functions as 0005 left them.
DROP TRIGGER IF EXISTS wallet_held_matches_holds ON wallets_wallet;
DROP TRIGGER IF EXISTS hold_matches_wallet ON transfers_hold;
DROP TRIGGER IF EXISTS hold_change_guard ON transfers_hold;
DROP FUNCTION IF EXISTS hold_check_wallet_held();
DROP FUNCTION IF EXISTS hold_guard_change();

CREATE OR REPLACE FUNCTION ledger_check_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t transfers_transfer%ROWTYPE;
    n integer; total numeric; src_ok integer; dst_ok integer; bad_types integer;
    src_kind text; src_currency text; dst_kind text; dst_currency text;
BEGIN
    SELECT * INTO t FROM transfers_transfer WHERE id = NEW.id;
    SELECT count(*), coalesce(sum(e.amount), 0),
           count(*) FILTER (WHERE e.wallet_id = t.source_wallet_id AND e.amount = -t.amount),
           count(*) FILTER (WHERE e.wallet_id = t.destination_wallet_id AND e.amount = t.amount),
           count(*) FILTER (WHERE NOT (
                (t.kind = 'deposit' AND e.type = 'deposit')
             OR (t.kind = 'withdrawal' AND e.type = 'withdrawal')
             OR (t.kind = 'transfer' AND e.type = CASE WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END)))
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
         OR (t.kind = 'transfer' AND src_kind = 'user' AND dst_kind = 'user')) THEN
        RAISE EXCEPTION 'transfer % of kind % cannot go from a % wallet to a % wallet',
            t.id, t.kind, src_kind, dst_kind
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
            DETAIL = format('transfer_id=%s', t.id);
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
    IF w_kind = 'system' THEN
        IF NEW.balance_after IS NOT NULL THEN
            RAISE EXCEPTION 'system wallet legs carry no balance_after (entry %)', NEW.id
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
