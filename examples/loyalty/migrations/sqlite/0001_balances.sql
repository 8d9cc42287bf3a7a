-- Loyalty's own table: one balance per customer who was ever awarded points.
-- The CHECK keeps "a balance is never negative" in the database, so a bug in
-- the code is a refused transaction rather than a wrong balance.
CREATE TABLE balances (
    customer_id TEXT    PRIMARY KEY,
    points      INTEGER NOT NULL CHECK (points >= 0)
) WITHOUT ROWID;
