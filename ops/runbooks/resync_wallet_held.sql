-- Re-sync ONE user wallet's stored `held` with its pending holds, and audit it, in one transaction.
--
-- Only when `manage.py reconcile --wallet <id>` reports held_mismatch (and nothing about the
-- holds themselves, hold_capture_mismatch): the holds are intact and only the stored sum of
-- the pending ones is wrong. See docs/operations.md, "A wallet under review". The triggers
-- stay ON: at COMMIT PostgreSQL refuses any `held` other than the sum of the wallet's
-- pending holds (transfers.0007), and `held` can never exceed the balance (a CHECK).
-- The wallet's row is locked first, as every hold change locks it, so no hold of the
-- wallet changes while the sum is taken.
--
--   psql "$MIGRATE_DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v wallet=<wallet uuid> -v operator=<your admin user id> -v reason='<ticket>' \
--        -f ops/runbooks/resync_wallet_held.sql
--
-- It prints the wallet it changed with the old and new held; no row means no such user wallet.
BEGIN;

SELECT id FROM wallets_wallet WHERE id = :'wallet'::uuid AND kind = 'user' FOR NO KEY UPDATE;

WITH target AS (
    SELECT w.id, w.currency, w.held AS old_held,
           coalesce((SELECT sum(h.amount) FROM transfers_hold h
                      WHERE h.wallet_id = w.id AND h.status = 'pending'), 0) AS pending
      FROM wallets_wallet w
     WHERE w.id = :'wallet'::uuid AND w.kind = 'user'
), resynced AS (
    UPDATE wallets_wallet w SET held = t.pending, updated_at = now()  -- the history of held's stamp
      FROM target t
     WHERE w.id = t.id
    RETURNING w.id, w.currency, t.old_held, w.held AS new_held
)
INSERT INTO audit_auditevent (created_at, actor_id, actor_label, action, target_type, target_id,
                              amount, currency, outcome, user_agent, request_id, details)
SELECT now(), :'operator'::bigint, '', 'wallet.updated', 'wallet', id::text,
       NULL, currency, 'ok', 'ops/runbooks/resync_wallet_held.sql', '',
       jsonb_build_object('held', jsonb_build_object('old', old_held, 'new', new_held),
                          'reason', :'reason'::text)
  FROM resynced
RETURNING target_id AS wallet, details;

COMMIT;
