-- A customer's password, as an Argon2id hash in the PHC string format
-- (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`): the password itself is never
-- stored. Customers registered before passwords existed have none ('') and
-- cannot sign in until one is set.
ALTER TABLE customers ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
