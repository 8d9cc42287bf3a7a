-- A stand-in producer's database (fulfillment's, in billing's tests) needs
-- only the framework's tables: the tests publish into its outbox.
CREATE TABLE stand_in (id BIGINT PRIMARY KEY);
