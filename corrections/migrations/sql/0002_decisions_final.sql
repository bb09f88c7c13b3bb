-- An adjustment proposal's decision is final, and what was proposed never changes:
-- once approved or rejected, no column may change and the row may not be deleted; before
-- that, only the decision's columns (status, decided_by, decided_at, decision_note,
-- transfer) may be set, and the row may not be deleted either (a mistaken proposal is
-- rejected, which keeps its trail).
CREATE OR REPLACE FUNCTION corrections_proposal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'adjustment proposal % cannot be deleted; reject it instead', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_NAME;
    END IF;
    IF OLD.status <> 'proposed' THEN
        RAISE EXCEPTION 'adjustment proposal % was already %: decisions are final', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_NAME;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.wallet_id IS DISTINCT FROM OLD.wallet_id
       OR NEW.amount IS DISTINCT FROM OLD.amount
       OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.reason IS DISTINCT FROM OLD.reason
       OR NEW.proposed_by_id IS DISTINCT FROM OLD.proposed_by_id
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'adjustment proposal %: what was proposed cannot change', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_NAME;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER corrections_proposal_guard BEFORE UPDATE OR DELETE ON corrections_adjustmentproposal
    FOR EACH ROW EXECUTE FUNCTION corrections_proposal_guard();
