"""The dispatcher's cursor (one row, starting after the events written before webhooks
existed: no endpoint could want them) and the database's rules for deliveries:

- attempts are append-only (ledger_reject_change, audit.0002);
- a delivery's attempt count only grows, and a finished delivery (succeeded, failed,
  cancelled) changes only by being made pending again (redelivery);
- a delivery is for an event of its endpoint's owner, about the wallet it names (no
  receiver is ever sent someone else's event, whatever the code above does).
"""

from django.db import migrations

FORWARD = """
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
"""

REVERSE = """
DROP TRIGGER IF EXISTS webhooks_delivery_no_delete ON webhooks_delivery;
DROP TRIGGER IF EXISTS webhooks_delivery_check ON webhooks_delivery;
DROP FUNCTION IF EXISTS webhooks_delivery_check();
DROP TRIGGER IF EXISTS webhooks_attempt_append_only ON webhooks_attempt;
DELETE FROM webhooks_dispatch_cursor;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("events", "0002_append_only"),
        ("audit", "0002_append_only"),  # ledger_reject_change()
    ]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
