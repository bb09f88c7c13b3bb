-- A user wallet's balance and held amount at an instant (transfers.reports.balance_at).
-- No row unless the caller owns the wallet.
--
-- The balance is balance_after of the wallet's last entry stamped at or before the instant
-- (ties by id): one backward seek of entry_wallet_created_idx (wallet_id, created_at, id),
-- balance_after read from the index itself. No entry yet: 0. Now: the wallet's last entry,
-- whatever its stamp. {entry} is ENTRY_AT or ENTRY_NOW (transfers.reports).
-- The held amount is held_after of the wallet's last change of held stamped at or before
-- the instant (ties by id): one backward seek of heldchange_wallet_at_idx (wallet_id,
-- changed_at, id, held_after), held_after read from the index. No change yet: 0. Now: the
-- wallet's held.
-- {held} is _HELD_AT, or w.held for now (transfers.reports).
SELECT w.currency,
       e.id,
       coalesce(e.balance_after, 0),
       coalesce(({held}), 0)
  FROM wallets_wallet w
  LEFT JOIN LATERAL ({entry}) e ON true
 WHERE w.id = %(wallet)s AND w.owner_id = %(owner)s AND w.kind = 'user'
