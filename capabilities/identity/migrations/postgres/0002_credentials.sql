-- A customer's password hash: see migrations/sqlite/0002_credentials.sql.
ALTER TABLE customers ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
