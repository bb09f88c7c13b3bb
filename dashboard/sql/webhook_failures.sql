-- Webhook deliveries given up since %(month)s and since %(day)s, by the last attempt's error.
-- Reads webhook_delivery_finished_idx (status, finished_at DESC): one range scan.
SELECT last_error,
       count(*) FILTER (WHERE finished_at >= %(day)s),
       count(*)
FROM webhooks_delivery
WHERE status = 'failed' AND finished_at >= %(month)s
GROUP BY last_error
ORDER BY count(*) DESC, last_error
