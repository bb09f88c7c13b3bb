DROP TRIGGER IF EXISTS events_append_only ON events_event;
