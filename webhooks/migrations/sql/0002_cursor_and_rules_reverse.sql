
DROP TRIGGER IF EXISTS webhooks_delivery_no_delete ON webhooks_delivery;
DROP TRIGGER IF EXISTS webhooks_delivery_check ON webhooks_delivery;
DROP FUNCTION IF EXISTS webhooks_delivery_check();
DROP TRIGGER IF EXISTS webhooks_attempt_append_only ON webhooks_attempt;
DELETE FROM webhooks_dispatch_cursor;
