-- A user wallet's balance and held amount at an instant (transfers.reports.balance_at).
-- No row unless the caller owns the wallet.
--
-- The balance is balance_after of the wallet's last entry stamped at or before the instant
-- (ties by id): one backward seek of entry_wallet_created_idx (wallet_id, created_at, id),
-- balance_after read from the index itself. No entry yet: 0. Now: the wallet's last entry,
-- whatever its stamp. {entry} is ENTRY_AT or ENTRY_NOW (transfers.reports).
-- The held amount is the sum of the holds pending at that instant: created at or before it
-- and not finished by then (finished_at records a capture's, a void's or an expiry's time).
SELECT w.currency,
       e.id,
       coalesce(e.balance_after, 0),
       (SELECT coalesce(sum(h.amount), 0)
          FROM transfers_hold h
         WHERE h.wallet_id = w.id
           AND h.created_at <= %(at)s
           AND (h.finished_at IS NULL OR h.finished_at > %(at)s))
  FROM wallets_wallet w
  LEFT JOIN LATERAL ({entry}) e ON true
 WHERE w.id = %(wallet)s AND w.owner_id = %(owner)s AND w.kind = 'user'
