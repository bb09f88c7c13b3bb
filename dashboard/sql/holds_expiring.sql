-- Pending holds that expire before the given instant, soonest first (hold_pending_expiry_idx), with
-- how many there are in all.
SELECT h.id, h.wallet_id, h.amount, h.currency, h.expires_at,
       count(*) OVER () AS total
  FROM transfers_hold h
 WHERE h.status = 'pending' AND h.expires_at < %(until)s
 ORDER BY h.expires_at, h.id
 LIMIT %(limit)s
