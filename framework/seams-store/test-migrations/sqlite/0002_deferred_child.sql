-- A row whose foreign key is checked only at COMMIT, so a test can make a
-- group's commit fail after every statement in it succeeded.
CREATE TABLE parents (id INTEGER PRIMARY KEY);
CREATE TABLE children (
    parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
);
