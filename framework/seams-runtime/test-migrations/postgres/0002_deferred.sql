-- A constraint checked only at COMMIT: lets a test make a group commit fail.
CREATE TABLE parent (id BIGINT PRIMARY KEY);
CREATE TABLE child (parent_id BIGINT NOT NULL REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
