-- Refused money requests (`money.failed`, outcome = the error code) and rate-limit refusals
-- (`ratelimit.rejected`, outcome = the quota's scope) since the month's and the day's start
-- (on the hour): the hourly totals before the rolled-up mark, plus the audit rows since
-- (audit_action_idx).
SELECT action, outcome, sum(day_count), sum(month_count)
  FROM (SELECT action, outcome,
               coalesce(sum(count) FILTER (WHERE hour >= %(day)s), 0) AS day_count,
               sum(count) AS month_count
          FROM dashboard_refusalhour
         WHERE action = ANY(%(actions)s) AND hour >= %(month)s AND hour < %(rolled)s
         GROUP BY action, outcome
        UNION ALL
        SELECT action, outcome, count(*) FILTER (WHERE created_at >= %(day)s), count(*)
          FROM audit_auditevent
         WHERE action = ANY(%(actions)s) AND created_at >= %(live_from)s AND created_at <= %(now)s
         GROUP BY action, outcome) refused
 GROUP BY action, outcome
 ORDER BY action, sum(month_count) DESC, outcome
