-- Per currency: user wallets' stored balances and held amounts, the positions of the
-- system and adjustment wallets (the sum of their entries: they keep no row balance, so
-- their one or two rows per currency each read entry_system_leg_idx, index only), and the
-- wallets that need an operator. One pass over the wallets table.
SELECT w.currency,
       count(*) FILTER (WHERE w.kind = 'user') AS user_wallets,
       coalesce(sum(w.balance) FILTER (WHERE w.kind = 'user'), 0) AS user_balance,
       coalesce(sum(w.held) FILTER (WHERE w.kind = 'user'), 0) AS held,
       coalesce(sum(p.position) FILTER (WHERE w.kind = 'system'), 0) AS system_position,
       coalesce(sum(p.position) FILTER (WHERE w.kind = 'adjustment'), 0) AS adjustment_position,
       count(*) FILTER (WHERE w.status = 'under_review') AS under_review,
       count(*) FILTER (WHERE w.inconsistent_since IS NOT NULL) AS inconsistent
  FROM wallets_wallet w
  LEFT JOIN LATERAL (
        SELECT coalesce(sum(e.amount), 0) AS position
          FROM transfers_ledgerentry e
         WHERE e.wallet_id = w.id AND e.balance_after IS NULL AND w.kind <> 'user'
       ) p ON true
 GROUP BY w.currency
 ORDER BY w.currency
