-- The work that caused each message, so that the sender's log lines name it
-- (`trace_id`, `correlation_id`): a message is sent by a worker of its own,
-- after the event's handling has ended. Rows recorded before this have none.
ALTER TABLE deliveries ADD COLUMN correlation_id TEXT;
ALTER TABLE deliveries ADD COLUMN trace_id TEXT;
