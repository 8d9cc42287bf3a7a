-- The inbox is named after the subscription that applies the events
-- (`<consumer><-<producer>`), by the framework, no longer by hand: the
-- invoice events applied under the old name stay applied.
UPDATE seams_inbox SET consumer = 'fulfillment<-billing' WHERE consumer = 'fulfillment.invoices';
