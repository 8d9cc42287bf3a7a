-- The inbox is named after the subscription that applies the events
-- (`<consumer><-<producer>`), by the framework, no longer by hand. The
-- contacts came from identity's feed; the deliveries from billing's and
-- fulfillment's, which shared one name. Event ids are unique across feeds,
-- so a deliveries row is kept under both names: each subscription still
-- finds the events it applied, and the other name's copy matches nothing
-- it will be sent.
UPDATE seams_inbox SET consumer = 'notification<-identity' WHERE consumer = 'notification.contacts';
INSERT INTO seams_inbox (consumer, event_id, handled_at_ms)
    SELECT 'notification<-fulfillment', event_id, handled_at_ms FROM seams_inbox
    WHERE consumer = 'notification.deliveries';
UPDATE seams_inbox SET consumer = 'notification<-billing' WHERE consumer = 'notification.deliveries';
