-- Re-sync ONE user wallet's stored balance with its ledger, and audit it, in one transaction.
--
-- Only when `manage.py reconcile --wallet <id>` reports balance_mismatch and nothing else for
-- the wallet: its entries are intact and only the stored balance (a cache of them) is wrong.
-- See docs/operations.md. The ledger's triggers stay ON: at COMMIT PostgreSQL refuses any
-- balance other than the one the wallet's latest entry carries, so this cannot invent money.
--
--   psql "$MIGRATE_DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v wallet=<wallet uuid> -v operator=<your admin user id> -v reason='<ticket>' \
--        -f ops/runbooks/resync_wallet_balance.sql
--
-- It prints the wallet it changed with the old and new balance; no row means no such user wallet.
BEGIN;

WITH target AS (
    SELECT w.id, w.currency, w.balance AS old_balance,
           coalesce((SELECT e.balance_after FROM transfers_ledgerentry e
                      WHERE e.wallet_id = w.id ORDER BY e.id DESC LIMIT 1), 0) AS ledger_balance
      FROM wallets_wallet w
     WHERE w.id = :'wallet'::uuid AND w.kind = 'user'
       FOR NO KEY UPDATE OF w
), resynced AS (
    UPDATE wallets_wallet w SET balance = t.ledger_balance
      FROM target t
     WHERE w.id = t.id
    RETURNING w.id, w.currency, t.old_balance, w.balance AS new_balance
)
INSERT INTO audit_auditevent (created_at, actor_id, actor_label, action, target_type, target_id,
                              amount, currency, outcome, user_agent, request_id, details)
SELECT now(), :'operator'::bigint, '', 'wallet.updated', 'wallet', id::text,
       NULL, currency, 'ok', 'ops/runbooks/resync_wallet_balance.sql', '',
       jsonb_build_object('balance', jsonb_build_object('old', old_balance, 'new', new_balance),
                          'reason', :'reason'::text)
  FROM resynced
RETURNING target_id AS wallet, details;

COMMIT;
