-- The span whose handling recorded each message (the event's delivery to
-- notification), so that sending it, later and by a worker of its own, is
-- part of the same trace. Rows recorded before this have none.
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;
