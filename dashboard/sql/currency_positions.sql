-- Per currency: user wallets' stored balances and held amounts, the positions of the system
-- and adjustment wallets, and the wallets that need an operator. One pass over the wallets;
-- a system or adjustment wallet's position (the sum of its entries: it keeps no row balance)
-- is its rolled-up total plus its entries since (entry_wallet_created_idx).
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
        SELECT coalesce((SELECT h.amount FROM dashboard_houseposition h WHERE h.wallet_id = w.id), 0)
             + coalesce((SELECT sum(e.amount) FROM transfers_ledgerentry e
                          WHERE e.wallet_id = w.id AND e.created_at >= %(rolled)s), 0) AS position
         WHERE w.kind <> 'user'
       ) p ON true
 GROUP BY w.currency
 ORDER BY w.currency
