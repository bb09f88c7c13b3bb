-- Money moved by kind and currency since the month's and the day's start (on the hour): the
-- hourly totals before the rolled-up mark, plus the transfers since (transfer_created_idx).
SELECT kind, currency, sum(day_count), sum(day_amount), sum(month_count), sum(month_amount)
  FROM (SELECT kind, currency,
               coalesce(sum(count) FILTER (WHERE hour >= %(day)s), 0) AS day_count,
               coalesce(sum(amount) FILTER (WHERE hour >= %(day)s), 0) AS day_amount,
               sum(count) AS month_count,
               sum(amount) AS month_amount
          FROM dashboard_movementhour
         WHERE hour >= %(month)s AND hour < %(rolled)s
         GROUP BY kind, currency
        UNION ALL
        SELECT kind, currency,
               count(*) FILTER (WHERE created_at >= %(day)s),
               coalesce(sum(amount) FILTER (WHERE created_at >= %(day)s), 0),
               count(*),
               sum(amount)
          FROM transfers_transfer
         WHERE created_at >= %(live_from)s AND created_at <= %(now)s
         GROUP BY kind, currency) moved
 GROUP BY kind, currency
 ORDER BY currency, kind
