-- Late cancellations (0007) whose Redis keys (the release's mark, the line, the
-- pick tally) are still owed their expiry. The batch that releases a pending
-- line in Redis and commits it here lets its keys expire right after the
-- commit; a crash or a Redis error between the two would leave them without
-- expiry for good, since no event brings a late cancellation back (contract,
-- section 4: Redis memory spent on deduplication does not grow with history).
-- The row is written with the cancellation, in its transaction, and deleted
-- once its keys are released; a worker releases what is left when it starts,
-- after a failed batch, and when idle.
CREATE TABLE late_cancellation_releases (
    order_id        text        NOT NULL,
    line_id         text        NOT NULL,
    sku             text        NOT NULL,
    location_id     text        NOT NULL,
    cancel_event_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, line_id)
);
