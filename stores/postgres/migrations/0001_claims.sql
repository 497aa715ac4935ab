-- wharf-postgres, schema version 1: the claim table of the idempotency store.
--
-- One row per (consumer, key): replicas of one consumer share its rows, different
-- consumers never collide. `state` 0 is a claim in flight (held by `token` until
-- `until`), 1 a completion remembered until `until`. Times are the database's clock.
CREATE TABLE IF NOT EXISTS {table} (
    consumer text        NOT NULL,
    key      text        NOT NULL,
    state    smallint    NOT NULL,
    token    bigint      NOT NULL,
    until    timestamptz NOT NULL,
    PRIMARY KEY (consumer, key)
);
-- Cleanup deletes expired rows in small batches, oldest first.
CREATE INDEX IF NOT EXISTS {table}_until ON {table} (until);
