-- Cycle counts, alerts, and every message the worker publishes (contract, sections 3 and 5).

-- Every cycle count as the WMS reported it, with what the worker itself held.
CREATE TABLE inventory_adjustments (
    event_id        text        PRIMARY KEY REFERENCES inventory_events (event_id),
    sku             text        NOT NULL,
    location_id     text        NOT NULL,
    expected_count  bigint      NOT NULL,
    actual_count    bigint      NOT NULL,
    variance        bigint      NOT NULL,
    reason          text        NOT NULL,
    approved_by     text,
    audit_id        text,
    -- The worker's onHand just before the count was applied, and how far it was
    -- from what the WMS expected (worker_on_hand - expected_count): an observation.
    worker_on_hand  bigint      NOT NULL,
    mirror_drift    bigint      NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inventory_adjustments_sku_location ON inventory_adjustments (sku, location_id);

-- One row per alert; its messageId is derived from the event that raised it.
CREATE TABLE variance_alerts (
    message_id       text        PRIMARY KEY,
    alert_type       text        NOT NULL CHECK (alert_type IN ('INVENTORY_VARIANCE_ALERT', 'INVENTORY_NEGATIVE_ALERT')),
    event_id         text        NOT NULL REFERENCES inventory_events (event_id),
    sku              text        NOT NULL,
    location_id      text        NOT NULL,
    -- Negative alerts: the bucket that went below zero and its value.
    bucket           text,
    value            bigint,
    -- Variance alerts: the count.
    expected_count   bigint,
    actual_count     bigint,
    variance         bigint,
    percent_variance double precision,
    raised_at        timestamptz NOT NULL
);

CREATE INDEX variance_alerts_event ON variance_alerts (event_id);

-- Every outbound message (alerts, allocations, dead letters) is written here in
-- the batch's transaction, then published; published_at is set once the broker
-- acknowledged it. A crash in between is repaired by publishing again: the
-- messageId lets consumers drop the duplicate.
CREATE TABLE outbox (
    message_id   text        PRIMARY KEY,
    topic        text        NOT NULL,
    message_key  bytea,
    payload      bytea       NOT NULL,
    -- [{"name": ..., "value": ...}], values as text.
    headers      jsonb       NOT NULL DEFAULT '[]',
    -- The event that caused it; NULL for a dead letter without a valid eventId.
    event_id     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_pending ON outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_event ON outbox (event_id) WHERE event_id IS NOT NULL;

-- Every message sent to the dead-letter topic, once. Its messageId holds the
-- source offset and a digest of the bytes: a topic recreated with the same
-- offsets is not mistaken for the one before.
CREATE TABLE dead_letters (
    message_id       text        PRIMARY KEY REFERENCES outbox (message_id),
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    error_code       text        NOT NULL,
    detail           text        NOT NULL,
    event_id         text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_source ON dead_letters (source_topic, source_partition, source_offset);
CREATE INDEX dead_letters_code ON dead_letters (error_code, created_at);
