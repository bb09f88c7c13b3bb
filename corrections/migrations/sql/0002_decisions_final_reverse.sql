DROP TRIGGER IF EXISTS corrections_proposal_guard ON corrections_adjustmentproposal;
DROP FUNCTION IF EXISTS corrections_proposal_guard();
