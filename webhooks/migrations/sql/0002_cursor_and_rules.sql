
INSERT INTO webhooks_dispatch_cursor (id, sequence, waiting_xids, waiting_sequence, updated_at)
SELECT 1, coalesce(max(sequence), 0), '{}', NULL, now() FROM events_event;

CREATE TRIGGER webhooks_attempt_append_only BEFORE UPDATE OR DELETE ON webhooks_attempt
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();

CREATE FUNCTION webhooks_delivery_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_owner bigint;
    event_wallet uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT e.owner_id, e.wallet_id INTO event_owner, event_wallet
        FROM events_event e WHERE e.sequence = NEW.event_id;
        IF event_owner IS DISTINCT FROM (SELECT owner_id FROM webhooks_endpoint WHERE id = NEW.endpoint_id)
           OR event_wallet IS DISTINCT FROM NEW.wallet_id THEN
            RAISE EXCEPTION 'webhook delivery % names an event of another user or wallet', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.endpoint_id <> OLD.endpoint_id OR NEW.event_id <> OLD.event_id OR NEW.wallet_id <> OLD.wallet_id
       OR NEW.attempts < OLD.attempts THEN
        RAISE EXCEPTION 'webhook delivery %: endpoint, event and wallet never change; attempts only grow', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status <> 'pending' AND NEW.status <> 'pending' AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'webhook delivery % is %: only a redelivery (back to pending) changes it', OLD.id, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER webhooks_delivery_check BEFORE INSERT OR UPDATE ON webhooks_delivery
    FOR EACH ROW EXECUTE FUNCTION webhooks_delivery_check();

CREATE TRIGGER webhooks_delivery_no_delete BEFORE DELETE ON webhooks_delivery
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
