-- Money moved by kind and currency over the last 30 days, and the last 24 hours of them:
-- one range scan of transfer_created_idx.
SELECT kind,
       currency,
       count(*) FILTER (WHERE created_at >= %(day)s) AS day_count,
       coalesce(sum(amount) FILTER (WHERE created_at >= %(day)s), 0) AS day_amount,
       count(*) AS month_count,
       coalesce(sum(amount), 0) AS month_amount
  FROM transfers_transfer
 WHERE created_at >= %(month)s AND created_at <= %(now)s
 GROUP BY kind, currency
 ORDER BY currency, kind
