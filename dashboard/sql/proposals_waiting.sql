-- Adjustments proposed and waiting for a second operator, oldest first (proposal_status_idx),
-- with how many wait in all.
SELECT p.id, p.wallet_id, p.amount, p.currency, p.reason, p.created_at, p.proposed_by_id,
       count(*) OVER () AS total
  FROM corrections_adjustmentproposal p
 WHERE p.status = 'proposed'
 ORDER BY p.created_at, p.id
 LIMIT %(limit)s
