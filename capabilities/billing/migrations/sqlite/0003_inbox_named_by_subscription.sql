-- The inbox is named after the subscription that applies the events
-- (`<consumer><-<producer>`), by the framework, no longer by hand: the
-- failures compensated under the old name stay compensated.
UPDATE seams_inbox SET consumer = 'billing<-fulfillment' WHERE consumer = 'billing.compensation';
