-- Progress visible from any node, webhook deliveries claimed by one node at a time, secrets
-- shared by the nodes of a fleet.
ALTER TABLE jobs ADD COLUMN progress TEXT;
ALTER TABLE webhooks ADD COLUMN lease_until REAL;
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL);
