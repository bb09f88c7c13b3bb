-- A statement's figures for the period [from, to) of a user wallet (transfers.reports).
-- No row unless the caller owns the wallet.
--
-- The period is a piece of the wallet's chain of entries (the id order, which balance_after
-- follows): after the last entry stamped before `from` (the opening entry, if any) up to
-- the last entry stamped before `to` (the closing entry). Each end is one backward seek of
-- entry_wallet_created_idx; the totals read the piece through entry_wallet_id_idx. The
-- closing entry is never before the opening one (GREATEST), so the piece is never negative:
-- opening + total_in - total_out = closing holds by the ledger's own running-balance check.
SELECT w.currency,
       o.id,
       coalesce(o.balance_after, 0),
       greatest(c.id, o.id),
       coalesce(CASE WHEN o.id IS NULL OR c.id >= o.id THEN c.balance_after ELSE o.balance_after END, 0),
       p.n,
       p.total_in,
       p.total_out
  FROM wallets_wallet w
  LEFT JOIN LATERAL (
       SELECT id, balance_after
         FROM transfers_ledgerentry
        WHERE wallet_id = w.id AND created_at < %(from)s
        ORDER BY created_at DESC, id DESC
        LIMIT 1) o ON true
  LEFT JOIN LATERAL (
       SELECT id, balance_after
         FROM transfers_ledgerentry
        WHERE wallet_id = w.id AND created_at < %(to)s
        ORDER BY created_at DESC, id DESC
        LIMIT 1) c ON true
  CROSS JOIN LATERAL (
       SELECT count(*) AS n,
              coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS total_in,
              coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS total_out
         FROM transfers_ledgerentry
        WHERE wallet_id = w.id AND id > coalesce(o.id, 0) AND id <= greatest(c.id, o.id)) p
 WHERE w.id = %(wallet)s AND w.owner_id = %(owner)s AND w.kind = 'user'
