-- A statement's ends for the period [from, to) of a user wallet (transfers.reports): the
-- opening entry and balance, the closing entry and balance.
-- No row unless the caller owns the wallet.
--
-- The period is a piece of the wallet's chain of entries (the id order, which balance_after
-- follows): after the last entry stamped before `from` (the opening entry, if any) up to
-- the last entry stamped before `to` (the closing entry). Each end is one backward seek of
-- entry_wallet_created_idx; the totals then read the piece (statement_totals.sql).
-- With no end given (up to now), the closing entry is the wallet's last, whatever its stamp:
-- {closing} is CLOSING_AT or CLOSING_NOW (transfers.reports). The
-- closing entry is never before the opening one (GREATEST), so the piece is never negative:
-- opening + total_in - total_out = closing holds by the ledger's own running-balance check.
SELECT w.currency,
       o.id,
       coalesce(o.balance_after, 0),
       greatest(c.id, o.id),
       coalesce(CASE WHEN o.id IS NULL OR c.id >= o.id THEN c.balance_after ELSE o.balance_after END, 0)
  FROM wallets_wallet w
  LEFT JOIN LATERAL (
       SELECT id, balance_after
         FROM transfers_ledgerentry
        WHERE wallet_id = w.id AND created_at < %(from)s
        ORDER BY created_at DESC, id DESC
        LIMIT 1) o ON true
  LEFT JOIN LATERAL ({closing}) c ON true
 WHERE w.id = %(wallet)s AND w.owner_id = %(owner)s AND w.kind = 'user'
