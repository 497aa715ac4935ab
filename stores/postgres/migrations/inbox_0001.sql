-- wharf-postgres inbox, schema version 1: the message ids each consumer has handled.
--
-- A row is inserted in the same transaction as the handler's own writes, so the id is
-- recorded if and only if the handler's effects are. (consumer, message_id) is the key:
-- replicas of one consumer share it, different consumers never collide.
CREATE TABLE IF NOT EXISTS {table} (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
-- Cleanup deletes rows past the retention window in small batches, oldest first.
CREATE INDEX IF NOT EXISTS {table}_received_at ON {table} (received_at);
