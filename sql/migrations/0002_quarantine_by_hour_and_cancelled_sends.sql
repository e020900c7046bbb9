-- Quarantine rows are keyed by the landing hour they came from, so that overlapping cleaning
-- windows (hourly and daily) replace exactly the hours they re-read.
ALTER TABLE push.quarantine ADD COLUMN landing_hour timestamptz;
UPDATE push.quarantine SET landing_hour = window_start WHERE landing_hour IS NULL;
ALTER TABLE push.quarantine ALTER COLUMN landing_hour SET NOT NULL;
DROP INDEX IF EXISTS push.quarantine_window;
CREATE INDEX quarantine_landing_hour ON push.quarantine (landing_hour);

-- An outbox message whose user withdrew consent before the relay reached it is cancelled.
ALTER TABLE push.notification_ledger DROP CONSTRAINT notification_ledger_status_check;
ALTER TABLE push.notification_ledger ADD CONSTRAINT notification_ledger_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'cancelled'));
