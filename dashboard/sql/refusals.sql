-- Refused money requests (`money.failed`, outcome = the error code) and rate-limit refusals
-- (`ratelimit.rejected`, outcome = the quota's scope) over the last 30 days and 24 hours:
-- one range scan of audit_action_idx per action.
SELECT action,
       outcome,
       count(*) FILTER (WHERE created_at >= %(day)s) AS day_count,
       count(*) AS month_count
  FROM audit_auditevent
 WHERE action = ANY(%(actions)s) AND created_at >= %(month)s AND created_at <= %(now)s
 GROUP BY action, outcome
 ORDER BY action, month_count DESC, outcome
