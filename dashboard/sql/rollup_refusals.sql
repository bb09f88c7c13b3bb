-- Refusal audit rows stamped in [from, to), added up per hour, action and outcome: one range
-- scan of audit_action_idx per action.
INSERT INTO dashboard_refusalhour (hour, action, outcome, count)
SELECT date_trunc('hour', created_at), action, outcome, count(*)
  FROM audit_auditevent
 WHERE action = ANY(%(actions)s) AND created_at >= %(from)s AND created_at < %(to)s
 GROUP BY 1, 2, 3
