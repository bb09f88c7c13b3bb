-- One chunk of a statement's entries, oldest first (transfers.reports.statement_rows):
-- those after entry %(after)s up to the closing entry %(last)s. A forward range of
-- entry_wallet_id_idx (wallet_id, id DESC) read backwards; `= ANY(ARRAY[...])` keeps
-- wallet_id in the ORDER BY, so that index is the plan (transfers.selectors.PinnedExact).
SELECT e.id, e.created_at, e.type, e.amount, e.balance_after, e.transfer_id, t.reference, t.description
  FROM transfers_ledgerentry e
  JOIN transfers_transfer t ON t.id = e.transfer_id
 WHERE e.wallet_id = ANY(ARRAY[%(wallet)s]::uuid[]) AND e.id > %(after)s AND e.id <= %(last)s
 ORDER BY e.wallet_id, e.id
 LIMIT %(limit)s
