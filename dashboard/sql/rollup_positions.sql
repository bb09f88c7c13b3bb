-- The system and adjustment wallets' entries stamped in [from, to), added to their positions:
-- one range scan of entry_wallet_created_idx per wallet.
INSERT INTO dashboard_houseposition (wallet_id, amount)
SELECT w.id, coalesce(sum(e.amount), 0)
  FROM wallets_wallet w
  JOIN transfers_ledgerentry e ON e.wallet_id = w.id AND e.created_at >= %(from)s AND e.created_at < %(to)s
 WHERE w.kind <> 'user'
 GROUP BY w.id
    ON CONFLICT (wallet_id) DO UPDATE SET amount = dashboard_houseposition.amount + EXCLUDED.amount
