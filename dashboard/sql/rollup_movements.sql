-- Transfers created in [from, to), added up per hour, kind and currency: one range scan of
-- transfer_created_idx over hours not rolled up yet (each hour is rolled up once).
INSERT INTO dashboard_movementhour (hour, kind, currency, count, amount)
SELECT date_trunc('hour', created_at), kind, currency, count(*), sum(amount)
  FROM transfers_transfer
 WHERE created_at >= %(from)s AND created_at < %(to)s
 GROUP BY 1, 2, 3
