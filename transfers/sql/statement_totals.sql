-- A statement's totals: its entries after entry {after} up to entry {last} (transfers.reports).
-- The two ids are written into the text as integers, not sent as parameters, so the planner
-- weighs the real range: all wallets' entries in it (a walk of the primary key, in heap
-- order) against this wallet's (entry_wallet_id_idx). Either reads the period's id range
-- only, never the wallet's history before or after it. With parameters it would plan for
-- a guessed range.
SELECT count(*),
       coalesce(sum(amount) FILTER (WHERE amount > 0), 0),
       coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)
  FROM transfers_ledgerentry
 WHERE wallet_id = %(wallet)s AND id > {after} AND id <= {last}
